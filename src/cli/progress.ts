/**
 * The build progress display on stderr: one redrawn line on a terminal (phase, bar, per-layer step
 * and ETA during tactic timing), one line per phase when stderr is a file or a pipe.
 */
import type { ProgressEvent } from '../options';

const PHASES: Record<ProgressEvent['phase'], string> = {
  import: 'import',
  infer: 'shapes',
  passes: 'passes',
  lower: 'lower',
  tactics: 'tactics',
  done: 'done',
};

export function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return '?';
  if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)}s`;
  return `${Math.floor(s / 60)}m${String(Math.round(s % 60)).padStart(2, '0')}s`;
}

export class ProgressBar {
  private lastPhase = '';
  private tacticsStart = 0;
  private drawn = false;

  constructor(private readonly out: NodeJS.WritableStream & { isTTY?: boolean; columns?: number }) {}

  /** The onProgress callback. */
  readonly update = (e: ProgressEvent): void => {
    if (e.phase === 'tactics' && this.lastPhase !== 'tactics') this.tacticsStart = e.elapsed;
    const phaseChanged = e.phase !== this.lastPhase;
    this.lastPhase = e.phase;
    if (!this.out.isTTY) {
      // A log gets each phase once, and the tactics phase every 10%.
      const tenth = e.total > 0 && e.phase === 'tactics' && Math.floor((e.done * 10) / e.total) !== Math.floor(((e.done - 1) * 10) / e.total);
      if ((phaseChanged || tenth) && e.phase !== 'done') this.out.write(this.line(e) + '\n');
      return;
    }
    const width = Math.max(40, Math.min(this.out.columns ?? 80, 120)) - 1;
    this.out.write('\r' + this.line(e).slice(0, width).padEnd(width) + (e.phase === 'done' ? '\r' + ' '.repeat(width) + '\r' : ''));
    this.drawn = e.phase !== 'done';
  };

  /** Ends the line (before an error message, or on cancel). */
  finish(): void {
    if (this.drawn) this.out.write('\n');
    this.drawn = false;
  }

  line(e: ProgressEvent): string {
    const name = PHASES[e.phase].padEnd(7);
    const frac = e.total > 0 ? e.done / e.total : 1;
    const barWidth = 24;
    const full = Math.round(frac * barWidth);
    const bar = '█'.repeat(full) + '░'.repeat(barWidth - full);
    let s = `kiln build ${name} ${bar} ${String(Math.round(frac * 100)).padStart(3)}%  ${formatSeconds(e.elapsed)}`;
    if (e.phase === 'tactics') {
      const spent = e.elapsed - this.tacticsStart;
      const eta = e.done > 0 ? (spent / e.done) * (e.total - e.done) : NaN;
      s += `  layer ${e.done}/${e.total}  ETA ${formatSeconds(eta)}${e.layer ? '  ' + e.layer : ''}`;
    }
    return s;
  }
}
