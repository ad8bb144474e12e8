/*
 * ops.h - what the typed half of an ops_<family>.c file includes (internal
 * to lib/graph).  Each file holds its ops' definitions (untyped, op.h) and
 * their four passes (typed), defined with MGR_OP_PASS_TABLE (graph_exec.h)
 * as R(mgr_<name>_passes), which the definitions point at.
 */
#ifndef MGRAD_GRAPH_OPS_H
#define MGRAD_GRAPH_OPS_H

#include "graph/graph_exec.h"

#endif /* MGRAD_GRAPH_OPS_H */
