/** What every pass is: a function from graph to graph that says which nodes it changed. */
import { Graph } from '../ir/graph';

export interface PassResult {
  /** Names of the nodes the pass removed, rewrote or fused. */
  changed: string[];
}

/** What a pass may know of the build: the backend the engine is for (rewrites can pay on one and not another). */
export interface PassContext {
  target: 'cpu' | 'cuda';
  /** Passes the user turned on by name (`optimize: { name: true }`): on where they are off by default. */
  requested?: ReadonlySet<string>;
}

export interface Pass {
  name: string;
  run(g: Graph, ctx: PassContext): PassResult;
}
