"""metagrad.torch: any PyTorch model (a torch.nn.Module) as a callback model,
so that its metagradients are exact and memory-bounded (the library's
trajectory, optimizers, checkpoint schedules and reverse pass; the module
gives only its loss, gradient and Hessian-vector products, by double
backward).

    import metagrad as mg
    from metagrad.torch import TorchModel

    net = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(),
                              torch.nn.Linear(256, 10))
    tm = TorchModel(net, input_shape=784)
    run = tm.run(ctx, train, validation=val, steps=1000, batch_size=128,
                 lr=0.05, momentum=0.9)
    w = run.add_meta('data_weights')
    run.train(); run.reverse()
    tm.load(run.params)        # θ_T back into net's parameters

Optional: `import metagrad` never imports torch; importing this module
without PyTorch raises ImportError saying what to install.  See
docs/python.md, "PyTorch models (metagrad.torch)".

θ is the module's trainable parameters (requires_grad=True) flattened in
`module.parameters()` order, each row-major (`TorchModel.layout`); frozen
parameters and buffers are constants.  The arithmetic follows the context's
dtype: an f64 context runs the module in float64 on the library's buffers
(torch tensors made with torch.from_numpy on numpy views of the C memory, so
θ, u, the inputs and the outputs are not copied).
"""

import collections

try:
    import numpy as np
except ImportError as e:  # torch.from_numpy is the zero-copy path
    raise ImportError("metagrad.torch needs numpy (apt-get install python3-numpy, or "
                      "pip install numpy): %s" % e) from e
try:
    import torch
    import torch.nn.functional as _F
except ImportError as e:
    raise ImportError("metagrad.torch needs PyTorch (apt-get install python3-torch, or pip "
                      "install torch); `import metagrad` works without it: %s" % e) from e

from ._api import CallbackModel, Context, Run
from ._errors import InvalidError, MetagradError, ShapeError, UnsupportedError

__all__ = ["TorchModel"]

#: One trainable parameter of θ: its name (as named_parameters() says it),
#: its shape and its offset in θ.
Slot = collections.namedtuple("Slot", "name shape offset size")

_DTYPES = {np.dtype(np.float64): torch.float64, np.dtype(np.float32): torch.float32}


def _tensor(arr):
    """A torch tensor on the memory of numpy array `arr`, without a copy.
    The library hands read-only views of its inputs; torch.from_numpy warns
    about those, so take a writable view of the same memory (the bridge
    never writes through it: torch only reads leaves and inputs)."""
    if not arr.flags.writeable:
        arr = arr.view()
        arr.flags.writeable = True  # allowed: the memory (a ctypes array) is writable
    return torch.from_numpy(arr)


def _loss_fn(loss):
    if callable(loss):
        return loss
    name = str(loss).lower()
    if name == "cross_entropy":
        # ℓ_i = logsumexp(o_i) − o_{i,y_i}: the built-in cross-entropy
        return lambda out, y: _F.cross_entropy(out, y, reduction="none")
    if name == "squared_error":
        # ℓ_i = ½‖o_i − t_i‖²: the built-in squared error
        return lambda out, t: 0.5 * ((out - t) ** 2).sum(1)
    raise InvalidError("loss: expected 'cross_entropy', 'squared_error' or a callable "
                       "loss(outputs, y) -> per-example losses [rows], got %r" % (loss,))


def _refuse_stateful(module):
    """Refuse layers whose training-mode forward is not a pure function of
    θ and the chunk: the checkpoint schedules recompute steps and need the
    same bits, and the library's derivatives assume nothing else changes."""
    from torch.nn.modules.batchnorm import _NormBase
    from torch.nn.modules.dropout import _DropoutNd
    for name, m in module.named_modules():
        where = name or type(m).__name__
        if isinstance(m, _NormBase) and m.training and m.track_running_stats:
            raise UnsupportedError(
                "metagrad.torch: %s (%s) updates its running statistics in training mode, "
                "a state outside θ that training would change; construct it with "
                "track_running_stats=False (every chunk normalised with its own batch "
                "statistics, as the built-in batch_norm) or put it in eval mode "
                "(fixed running statistics)" % (where, type(m).__name__))
        if isinstance(m, _DropoutNd) and m.training and m.p > 0:
            raise UnsupportedError(
                "metagrad.torch: %s (%s) draws random masks in training mode; the callback "
                "interface gives chunks but not the step they belong to, so a mask could "
                "neither be replayed exactly when a step is recomputed nor left out of the "
                "validation loss; put the dropout layers in eval mode (module.eval() or "
                "layer.eval()) or remove them" % (where, type(m).__name__))


class TorchModel:
    """A torch.nn.Module and a per-example loss as a callback model.

    Args:
        module:      the network: module(x) maps inputs [rows, *input_shape]
                     to outputs [rows, num_outputs] (logits for cross-entropy,
                     predictions for squared error).  Its trainable parameters
                     (requires_grad=True), in parameters() order, are θ.
        input_shape: one example's shape (an int or a tuple of ints): the
                     dataset's features, as the module receives them.
        num_outputs: None: taken from a probe forward pass.
        loss:        'cross_entropy' (default; ℓ_i = logsumexp(o_i) − o_{i,y}),
                     'squared_error' (ℓ_i = ½‖o_i − t_i‖²), or a callable
                     loss(outputs, y) -> tensor [rows] of per-example
                     losses, twice differentiable, where y is the labels
                     (int64 [rows]) in cross-entropy runs and the targets
                     [rows, num_outputs] in squared-error runs (the run's
                     `loss` option says which the library passes).
        input_tangents: True (default): hvp also gives the input-gradient
                     tangents that INPUTS metaparameters need.

    The forward pass must be a pure function of θ and the chunk (the
    checkpoint schedules recompute steps and rely on the same bits):
    batch-norm layers that track running statistics in training mode and
    dropout in training mode are refused (UnsupportedError); a probe
    forward pass at construction refuses any other use of the global random
    generator, in-place changes of buffers, or outputs that differ between
    two identical calls.  Batch norm with track_running_stats=False
    normalises each chunk with its own statistics, as the built-in layer.

    The module is re-parametrised in place during each call (its parameter
    slots hold views of θ, then the originals again): use one TorchModel,
    and its module, from one thread at a time, and do not change the
    module's structure or training mode after wrapping it.
    """

    def __init__(self, module, input_shape, num_outputs=None, loss="cross_entropy",
                 input_tangents=True):
        if not isinstance(module, torch.nn.Module):
            raise TypeError("module: expected a torch.nn.Module")
        if isinstance(input_shape, int):
            input_shape = (input_shape,)
        self.input_shape = tuple(int(d) for d in input_shape)
        if len(self.input_shape) < 1 or min(self.input_shape) < 1:
            raise InvalidError("input_shape: expected one or more positive sizes, got %r"
                               % (input_shape,))
        for name, t in list(module.named_parameters()) + list(module.named_buffers()):
            if t.device.type != "cpu":
                raise InvalidError("metagrad.torch: %s is on %s; the bridge runs the module on "
                                   "the CPU, on the library's host buffers (module.cpu())"
                                   % (name, t.device))
        self.module = module
        self.loss = _loss_fn(loss)
        self.input_tangents = bool(input_tangents)
        _refuse_stateful(module)

        # Every slot holding a parameter or buffer, aliases (tied weights)
        # included: θ's entries are the distinct trainable parameters in
        # parameters() order (which visits modules and slots in this order
        # and skips repeats).
        index, layout, self._slots, self._consts = {}, [], [], []
        offset = 0
        for mod_name, mod in module.named_modules(remove_duplicate=False):
            for key, p in mod._parameters.items():
                if p is None:
                    continue
                full = mod_name + "." + key if mod_name else key
                if not p.requires_grad:
                    self._consts.append((mod, "_parameters", key))
                    continue
                if id(p) not in index:
                    if p.dtype not in (torch.float32, torch.float64, torch.float16,
                                       torch.bfloat16):
                        raise InvalidError("metagrad.torch: parameter %s has dtype %s; θ "
                                           "must be real floating point" % (full, p.dtype))
                    index[id(p)] = len(layout)
                    layout.append(Slot(full, tuple(p.shape), offset, p.numel()))
                    offset += p.numel()
                self._slots.append((mod, key, index[id(p)]))
            for key, b in mod._buffers.items():
                if b is not None:
                    self._consts.append((mod, "_buffers", key))
        if not layout:
            raise InvalidError("metagrad.torch: the module has no trainable parameters")
        self.layout = tuple(layout)
        self.num_params = offset
        self._const_cache = {}
        self.num_outputs = self._probe(num_outputs)

    # ------------------------------------------------------------ θ

    @property
    def theta0(self):
        """The module's current trainable parameters as θ: float64 [P], a copy."""
        out = np.empty(self.num_params)
        params = self._params()
        for s in self.layout:
            out[s.offset:s.offset + s.size] = params[s.name].detach().reshape(-1).double().numpy()
        return out

    def _params(self):
        return dict(self.module.named_parameters())

    def unflatten(self, theta):
        """θ (or any [P] vector, e.g. an INITIAL_PARAMS metagradient) as an
        ordered dict name -> float64 tensor of the parameter's shape (copies)."""
        v = np.asarray(theta, dtype=np.float64).reshape(-1)
        if v.size != self.num_params:
            raise ShapeError("theta: expected %d values (num_params), got %d"
                             % (self.num_params, v.size))
        return collections.OrderedDict(
            (s.name, torch.from_numpy(v[s.offset:s.offset + s.size].copy()).reshape(s.shape))
            for s in self.layout)

    def load(self, theta):
        """Copy θ (e.g. run.params) into the module's parameters, in place,
        in their own dtype."""
        parts = self.unflatten(theta)
        params = self._params()
        with torch.no_grad():
            for name, value in parts.items():
                params[name].copy_(value)

    # ------------------------------------------------------------ runs

    @property
    def callback_model(self):
        """A metagrad.CallbackModel of the module (exact hvp; outputs for
        accuracy)."""
        return CallbackModel(self.num_params, self.input_shape, self.num_outputs,
                             self._loss_grad, hvp=self._hvp, outputs=self._outputs,
                             input_tangents=self.input_tangents)

    def run(self, ctx, train, *, validation, steps, batch_size, theta0=None, **options):
        """Run.from_callbacks(ctx, self.callback_model, theta0, train, ...):
        theta0 None takes the module's current parameters (self.theta0)."""
        if not isinstance(ctx, Context):
            raise TypeError("ctx: expected a metagrad.Context")
        return Run.from_callbacks(ctx, self.callback_model,
                                  self.theta0 if theta0 is None else theta0, train,
                                  validation=validation, steps=steps,
                                  batch_size=batch_size, **options)

    # ------------------------------------------------------------ the calls

    def _leaves(self, theta, requires_grad):
        """One leaf tensor per trainable parameter: a view of θ's memory."""
        t = _tensor(theta)
        out = []
        for s in self.layout:
            leaf = t[s.offset:s.offset + s.size].view(s.shape)
            out.append(leaf.requires_grad_() if requires_grad else leaf)
        return out

    def _constants(self, dtype):
        """Frozen parameters and buffers in `dtype` (floating ones cast once
        and cached; the module's own tensors when the dtype is theirs)."""
        own = [getattr(mod, where)[key] for mod, where, key in self._consts]
        key = [(id(t), t._version) for t in own]
        got = self._const_cache.get(dtype)
        if got is None or got[0] != key:  # new, or the module's tensors changed since
            got = (key, [t.detach().to(dtype) if t.is_floating_point() and t.dtype != dtype
                         else t for t in own])
            self._const_cache[dtype] = got
        return got[1]

    def _forward(self, leaves, x):
        """module(x) with θ's leaves in the parameter slots (and the
        constants in the context's dtype); the module's own tensors are put
        back afterwards, also when the forward pass raises."""
        consts = self._constants(x.dtype)
        versions = [c._version for c in consts]
        saved = []
        try:
            for mod, key, i in self._slots:
                saved.append((mod._parameters, key, mod._parameters[key]))
                mod._parameters[key] = leaves[i]
            for (mod, where, key), c in zip(self._consts, consts):
                d = getattr(mod, where)
                saved.append((d, key, d[key]))
                d[key] = c
            out = self.module(x)
        finally:
            for d, key, orig in reversed(saved):
                d[key] = orig
        for (mod, where, key), c, v in zip(self._consts, consts, versions):
            if c._version != v:
                self._const_cache.pop(x.dtype, None)  # a cast copy may hold the change
                raise UnsupportedError(
                    "metagrad.torch: the forward pass changed %s %s in place; it must be a "
                    "pure function of θ and the chunk (checkpointing recomputes steps)"
                    % ("buffer" if where == "_buffers" else "frozen parameter", key))
        if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[0] != x.shape[0]:
            raise ShapeError("metagrad.torch: the module returned %s for %d rows; expected "
                             "a tensor [rows, num_outputs]"
                             % (tuple(out.shape) if isinstance(out, torch.Tensor)
                                else type(out).__name__, x.shape[0]))
        return out

    def _ell(self, out, labels, targets):
        y = _tensor(labels).long() if labels is not None else _tensor(targets)
        ell = self.loss(out, y)
        if not isinstance(ell, torch.Tensor) or tuple(ell.shape) != (out.shape[0],):
            raise ShapeError("metagrad.torch: the loss must return one value per row, "
                             "a tensor [%d]; got %s" % (out.shape[0], tuple(ell.shape)
                                                        if isinstance(ell, torch.Tensor)
                                                        else type(ell).__name__))
        return ell

    def _loss_grad(self, theta, inputs, labels, targets, weights, scale, grad, example_losses):
        want_grad = grad is not None
        leaves = self._leaves(theta, want_grad)
        x = _tensor(inputs)
        sw = _tensor(weights) * scale
        with torch.set_grad_enabled(want_grad):
            ell = self._ell(self._forward(leaves, x), labels, targets)
            L = torch.dot(sw, ell)
        if example_losses is not None:
            torch.from_numpy(example_losses).copy_(ell.detach())
        if want_grad:
            gs = torch.autograd.grad(L, leaves, allow_unused=True)
            g = torch.from_numpy(grad)
            for s, gi in zip(self.layout, gs):
                if gi is not None:
                    g[s.offset:s.offset + s.size].add_(gi.reshape(-1))
        return float(L)

    def _hvp(self, theta, u, inputs, labels, targets, weights, scale, hu, loss_tangents,
             input_grad_tangents):
        # One forward-over-reverse by double backward.  With v = s·w as a
        # leaf, G(v) = ∇_θ Σ_i v_i ℓ_i (create_graph) and Q = ⟨G(v), u⟩:
        #   ∂Q/∂v_i = ⟨∇_θ ℓ_i, u⟩              (loss tangents)
        #   ∂Q/∂θ   = ∇²_θ(s Σ_i w_i ℓ_i) u = H u
        #   ∂Q/∂x_i = ∂⟨∇_θ L, u⟩/∂x_i = s w_i ∂⟨∇_θ ℓ_i, u⟩/∂x_i for
        #             independent rows (for coupled rows, batch statistics,
        #             the total derivative the reverse pass needs).
        # All three come from one backward pass of Q.
        leaves = self._leaves(theta, True)
        x = _tensor(inputs)
        want_x = input_grad_tangents is not None
        if want_x:
            x.requires_grad_()
        v = (_tensor(weights) * scale).requires_grad_()
        with torch.enable_grad():
            ell = self._ell(self._forward(leaves, x), labels, targets)
            G = torch.autograd.grad(torch.dot(v, ell), leaves, create_graph=True,
                                    allow_unused=True)
            uu = self._leaves(u, False)
            terms = [torch.dot(g.reshape(-1), ui.reshape(-1)) for g, ui in zip(G, uu)
                     if g is not None]
            Q = torch.stack(terms).sum() if terms else None
        wrt = [v] + (leaves if hu is not None else []) + ([x] if want_x else [])
        if Q is not None and Q.requires_grad:
            res = torch.autograd.grad(Q, wrt, allow_unused=True)
        else:  # the loss does not depend on θ through anything differentiable
            res = [None] * len(wrt)
        lt = torch.from_numpy(loss_tangents)
        if res[0] is not None:
            lt.copy_(res[0])
        else:
            lt.zero_()
        if hu is not None:
            h = torch.from_numpy(hu)
            for s, hi in zip(self.layout, res[1:1 + len(leaves)]):
                if hi is not None:
                    h[s.offset:s.offset + s.size].add_(hi.reshape(-1))
        if want_x:
            igt = torch.from_numpy(input_grad_tangents)
            if res[-1] is not None:
                igt.copy_(res[-1])
            else:
                igt.zero_()

    def _outputs(self, theta, inputs, out):
        with torch.no_grad():
            o = self._forward(self._leaves(theta, False), _tensor(inputs))
        torch.from_numpy(out).copy_(o)

    # ------------------------------------------------------------ checks

    def _probe(self, num_outputs):
        """Two forward passes on the same random rows (from a private
        generator) through the bridge, in float64: refuse randomness,
        in-place buffer changes and outputs that differ; return the output
        width."""
        rows = 2  # batch statistics need more than one value per channel
        gen = torch.Generator().manual_seed(0)
        x = torch.rand((rows,) + self.input_shape, generator=gen, dtype=torch.float64)
        theta = self.theta0
        state = torch.get_rng_state()
        outs = []
        for _ in range(2):
            with torch.no_grad():
                try:
                    outs.append(self._forward(self._leaves(theta, False), x))
                except MetagradError:
                    raise
                except RuntimeError as e:  # torch's shape and dtype errors
                    raise ShapeError("metagrad.torch: the module fails on rows of shape %s "
                                     "(input_shape %s): %s"
                                     % (tuple(x.shape), self.input_shape, e)) from None
        if not torch.equal(state, torch.get_rng_state()):
            raise UnsupportedError(
                "metagrad.torch: the forward pass draws from torch's global random generator "
                "(dropout or random augmentation in training mode?); it must be a pure "
                "function of θ and the chunk, since checkpointing recomputes steps")
        if not torch.equal(outs[0], outs[1]):
            raise UnsupportedError("metagrad.torch: two forward passes on the same θ and rows "
                                   "gave different outputs; the forward pass must be a pure "
                                   "function of θ and the chunk")
        k = int(outs[0].shape[1])
        if num_outputs is not None and int(num_outputs) != k:
            raise ShapeError("num_outputs: %d given, but the module returns %d outputs per row"
                             % (int(num_outputs), k))
        return k

    def __repr__(self):
        return "<metagrad.torch.TorchModel %s params=%d input_shape=%s outputs=%d>" % (
            type(self.module).__name__, self.num_params, self.input_shape, self.num_outputs)
