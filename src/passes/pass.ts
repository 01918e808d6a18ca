/** What every pass is: a function from graph to graph that says which nodes it changed. */
import { Graph } from '../ir/graph';

export interface PassResult {
  /** Names of the nodes the pass removed, rewrote or fused. */
  changed: string[];
}

export interface Pass {
  name: string;
  run(g: Graph): PassResult;
}
