/*
 * ops.h - the per-family op passes behind R(mgr_op_table) (typed; internal
 * to lib/graph).  Each family's four passes live together in ops_<family>.c;
 * graph_exec.c collects them into the dispatch table.
 */
#ifndef MGRAD_GRAPH_OPS_H
#define MGRAD_GRAPH_OPS_H

#include "graph/graph_exec.h"

#define MGR_DECLARE_OP(name)                                         \
    void R(mgr_##name##_forward)(const R(mgr_op_args) *a);           \
    void R(mgr_##name##_backward)(const R(mgr_op_args) *a);          \
    void R(mgr_##name##_tangent)(const R(mgr_op_args) *a);           \
    void R(mgr_##name##_tangent_backward)(const R(mgr_op_args) *a);

MGR_DECLARE_OP(dense)    /* ops_dense.c */
MGR_DECLARE_OP(tanh)     /* ops_activation.c */
MGR_DECLARE_OP(sigmoid)
MGR_DECLARE_OP(relu)
MGR_DECLARE_OP(gelu)
MGR_DECLARE_OP(softplus)
MGR_DECLARE_OP(scale)    /* ops_linear.c */
MGR_DECLARE_OP(add)
MGR_DECLARE_OP(flatten)
MGR_DECLARE_OP(conv2d)   /* ops_conv.c */
MGR_DECLARE_OP(avg_pool) /* ops_pool.c */
MGR_DECLARE_OP(max_pool)
MGR_DECLARE_OP(global_avg_pool)
MGR_DECLARE_OP(batch_norm) /* ops_norm.c */
MGR_DECLARE_OP(layer_norm)
MGR_DECLARE_OP(dropout)  /* ops_dropout.c */

#undef MGR_DECLARE_OP

#endif /* MGRAD_GRAPH_OPS_H */
