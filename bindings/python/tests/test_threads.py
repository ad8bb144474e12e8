"""Handles used from two threads never crash the process (docs/python.md,
"Threads").

ctypes releases the GIL during every C call, and the C library lets one
thread at a time use a context and its objects.  Each test makes a second
thread act while the first is inside C, deterministically: a callable that C
calls back (a callback model's loss_grad, an MGD progress callable) pauses
the first thread inside the C call until the second thread has acted, or
has blocked on the context's lock.  Every test ends with the results the
C library gives without interference (bit for bit: same code path, same
inputs, same machine) or with a clear exception, and never with a crash:
without the bindings' guard the close tests are heap-use-after-free
(ASan reports it; a plain build crashes or reads freed memory).
"""

import gc
import threading
import time

import pytest

import metagrad as mg

np = pytest.importorskip("numpy")

N, NV, F, C = 96, 48, 8, 3
T, B = 300, 16          # long enough that the other thread acts mid-run
WAIT = 30.0             # seconds before a test gives up waiting (a failure, not a hang)


def data(ctx, n, seed):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (n, F))
    y = (x[:, :C] + 0.3 * x[:, C:2 * C]).argmax(1).astype(np.int32)
    return mg.Dataset(ctx, x, labels=y, num_classes=C)


class Softmax:
    """Multinomial logistic regression as a callback model (approximate
    mode: the reverse pass calls loss_grad too).  At its `at`-th call it
    calls `pause()` from inside the C call."""
    P = C * F + C

    def __init__(self, at=0, pause=None):
        self.calls, self.at, self.pause = 0, at, pause

    def loss_grad(self, theta, inputs, labels, targets, weights, scale, grad, example_losses):
        self.calls += 1
        if self.calls == self.at:
            self.pause()
        W, b = theta[:C * F].reshape(C, F), theta[C * F:]
        O = inputs @ W.T + b
        m = O.max(1, keepdims=True)
        lse = m[:, 0] + np.log(np.exp(O - m).sum(1))
        ell = lse - O[np.arange(len(labels)), labels]
        if example_losses is not None:
            example_losses[:] = ell
        if grad is not None:
            Pr = np.exp(O - lse[:, None])
            Pr[np.arange(len(labels)), labels] -= 1
            dO = (scale * weights)[:, None] * Pr
            grad[:C * F] += (dO.T @ inputs).ravel()
            grad[C * F:] += dO.sum(0)
        return scale * float(np.dot(weights, ell))


class CallbackFx:
    """A callback run whose loss_grad can pause the training thread."""

    def __init__(self, at=0, pause=None):
        self.ctx = mg.Context(dtype="f64", seed=3)
        self.train = data(self.ctx, N, 1)
        self.train_bytes = self.ctx.memory()[0]
        self.val = data(self.ctx, NV, 2)
        self.base = self.ctx.memory()[0]  # before the run
        self.model = Softmax(at, pause)
        theta0 = np.random.default_rng(5).normal(0, 0.1, Softmax.P)
        self.run = mg.Run.from_callbacks(
            self.ctx, mg.CallbackModel(Softmax.P, F, C, self.model.loss_grad), theta0,
            self.train, validation=self.val, steps=T, batch_size=B, lr=0.1, momentum=0.5,
            shuffle_seed=7)
        self.lr = self.run.add_meta("lr_schedule")
        self.w = self.run.add_meta("data_weights")

    def close(self):
        for h in (self.run, self.train, self.val, self.ctx):
            h.close()


class BuiltinFx:
    """A built-in MLP run (the tanh layer of the original report) and an MGD
    on its learning-rate schedule, whose progress callable can pause the
    optimising thread between meta-steps, inside mgrad_mgd_run."""

    def __init__(self, pause_at=-1, pause=None):
        self.ctx = mg.Context(dtype="f64", seed=3)
        self.model = mg.Model(self.ctx, F).dense(16).activation("tanh").dense(C)
        self.train = data(self.ctx, N, 1)
        self.val = data(self.ctx, NV, 2)
        self.heldout = data(self.ctx, 40, 4)
        self.run = mg.Run(self.model, self.train, validation=self.val, steps=T, batch_size=B,
                          lr=0.05, momentum=0.5, shuffle_seed=7)
        self.lr = self.run.add_meta("lr_schedule")
        self.seen = []

        def progress(step, phi, score, seconds):
            self.seen.append((step, phi, score))
            if step == pause_at:
                pause()
            return False
        self.mgd = mg.MGD(self.lr, method="sgd", lr=1e-3, heldout=self.heldout,
                          progress=progress)

    def close(self):
        for h in (self.mgd, self.run, self.train, self.val, self.heldout, self.model, self.ctx):
            h.close()


class Worker(threading.Thread):
    """fn() in a thread; get() returns its result or raises its exception."""

    def __init__(self, fn):
        super().__init__(daemon=True)
        self.fn, self.result, self.exc = fn, None, None

    def run(self):
        try:
            self.result = self.fn()
        except BaseException as e:  # handed to the test thread by get()
            self.exc = e

    def get(self):
        self.join(WAIT)
        assert not self.is_alive(), "the thread did not finish"
        if self.exc is not None:
            raise self.exc
        return self.result


def wait(event):
    assert event.wait(WAIT), "the other thread never got there"


def wait_until_blocked(ctx):
    """Until another thread waits for the context's lock (inside the C call
    that holds it, from a callback).  The lock is private: the test reads it
    only to know that the other thread's call has really been issued."""
    guard = ctx._core.guard
    deadline = time.monotonic() + WAIT
    while guard.waiting == 0:
        assert time.monotonic() < deadline, "the other thread never blocked"
        time.sleep(0.001)


def reference_callback(lr_value=None):
    """φ, θ_T and the metagradients of CallbackFx without interference."""
    fx = CallbackFx()
    try:
        if lr_value is not None:
            fx.lr.value = lr_value
        phi = fx.run.train()
        theta = fx.run.params
        fx.run.reverse()
        return phi, theta, fx.lr.grad, fx.w.grad
    finally:
        fx.close()


def reference_mgd(steps):
    fx = BuiltinFx()
    try:
        fx.mgd.run(steps)
        return fx.seen, fx.mgd.best(), fx.lr.value, fx.run.train()
    finally:
        fx.close()


def in_thread_pausing(make_fx, act, **fx_args):
    """The fixture of make_fx(pause=...), and a pause that lets `act(fx)`
    run in a second thread while the first is inside C; `act` returns what
    the test checks.  Returns (fx, pause, second thread's Worker)."""
    inside, acted = threading.Event(), threading.Event()
    holder = {}

    def pause():
        inside.set()
        wait(acted)

    fx = make_fx(pause=pause, **fx_args)

    def other():
        wait(inside)
        try:
            return act(holder["fx"])
        finally:
            acted.set()
    holder["fx"] = fx
    return fx, Worker(other)


# ---------------------------------------------------------------- close while inside C

def test_close_during_train():
    phi_ref = reference_callback()[0]
    fx, other = in_thread_pausing(CallbackFx, lambda fx: fx.run.close(), at=T // 2)
    try:
        other.start()
        phi = fx.run.train()          # the run is closed half-way through
        other.get()
        assert phi == phi_ref         # the call in flight completed as if alone
        assert fx.run.closed
        with pytest.raises(mg.ClosedError):
            fx.run.train()
        with pytest.raises(mg.ClosedError):
            fx.lr.value               # noqa: B018
        assert fx.ctx.memory()[0] == fx.base  # freed once train() returned
    finally:
        fx.close()


def test_close_during_reverse():
    fx, other = in_thread_pausing(CallbackFx, lambda fx: fx.run.close(), at=T + 40)
    try:
        fx.run.train()                # loss_grad calls 1..T (+ validation)
        assert fx.model.calls < fx.model.at
        other.start()
        fx.run.reverse()              # closed inside: completes, then freed
        other.get()
        assert fx.run.closed and fx.model.calls > fx.model.at
        with pytest.raises(mg.ClosedError):
            fx.w.grad                 # noqa: B018
        assert fx.ctx.memory()[0] == fx.base
    finally:
        fx.close()


def test_context_and_datasets_closed_during_train_and_reverse():
    """The run keeps its context and datasets: closing the Python handles
    while it trains changes nothing, bit for bit."""
    phi_ref, theta_ref, glr_ref, gw_ref = reference_callback()

    def close_all(fx):
        for h in (fx.ctx, fx.train, fx.val):
            h.close()
    fx, other = in_thread_pausing(CallbackFx, close_all, at=T // 3)
    try:
        other.start()
        phi = fx.run.train()
        other.get()
        assert fx.ctx.closed and fx.train.closed and fx.val.closed
        assert phi == phi_ref and np.array_equal(fx.run.params, theta_ref)
        fx.run.reverse()
        assert np.array_equal(fx.lr.grad, glr_ref) and np.array_equal(fx.w.grad, gw_ref)
        with pytest.raises(mg.ClosedError):
            fx.run.evaluate(fx.val)
    finally:
        fx.close()


def test_model_context_datasets_closed_during_builtin_mgd():
    """The built-in model's path (engine_train through the tanh layer):
    everything but the run and the MGD closed between meta-steps, inside
    mgrad_mgd_run; the run completes exactly as without interference.  The
    held-out set, to which the C optimiser holds a plain pointer, is freed
    only when run() returns; later steps raise ClosedError."""
    seen_ref, best_ref, value_ref, phi_ref = reference_mgd(4)

    def close_all(fx):
        for h in (fx.model, fx.train, fx.val, fx.heldout, fx.ctx):
            h.close()
    fx, other = in_thread_pausing(BuiltinFx, close_all, pause_at=1)
    try:
        other.start()
        fx.mgd.run(4)
        other.get()
        assert fx.seen == seen_ref
        best, score = fx.mgd.best()
        assert np.array_equal(best, best_ref[0]) and score == best_ref[1]
        assert np.array_equal(fx.lr.value, value_ref)
        assert fx.run.train() == phi_ref  # the run kept its model copy and datasets
        with pytest.raises(mg.ClosedError, match="heldout"):
            fx.mgd.step()
    finally:
        fx.close()


@pytest.mark.parametrize("what", ["run", "mgd"])
def test_mgd_run_concurrent_with_close(what):
    seen_ref, best_ref, value_ref, _ = reference_mgd(4)
    fx, other = in_thread_pausing(BuiltinFx, lambda fx: getattr(fx, what).close(),
                                  pause_at=1)
    try:
        other.start()
        fx.mgd.run(4)                 # the MGD (or its run) closed after step 1
        other.get()
        assert fx.seen == seen_ref
        with pytest.raises(mg.ClosedError):
            fx.mgd.step()
        if what == "mgd":
            assert np.array_equal(fx.lr.value, value_ref)
        else:
            with pytest.raises(mg.ClosedError):
                fx.lr.value           # noqa: B018
    finally:
        fx.close()


def test_mgd_step_concurrent_with_close():
    """mgd.step() has no progress callable: pause inside the callback run's
    training instead, and close the MGD and its run from the other thread."""
    fx, other = in_thread_pausing(CallbackFx, lambda fx: (mgd.close(), fx.run.close()),
                                  at=T // 2)
    ref = CallbackFx()
    try:
        mgd = mg.MGD(fx.lr, method="sgd", lr=1e-3)
        phi_ref = mg.MGD(ref.lr, method="sgd", lr=1e-3).step()
        other.start()
        assert mgd.step() == phi_ref
        other.get()
        with pytest.raises(mg.ClosedError):
            mgd.step()
        assert fx.ctx.memory()[0] == fx.base
    finally:
        fx.close()
        ref.close()


# ---------------------------------------------------------------- calls that wait

def pause_until_blocked(make_fx, act, **fx_args):
    """As in_thread_pausing, for an `act` that waits for the context's lock:
    the paused thread resumes once the other one is blocked on it."""
    inside = threading.Event()
    holder = {}

    def pause():
        inside.set()
        wait_until_blocked(holder["fx"].ctx)

    fx = make_fx(pause=pause, **fx_args)
    holder["fx"] = fx

    def other():
        wait(inside)
        return act(fx)
    return fx, Worker(other)


def test_two_trains_on_one_run():
    phi_ref, theta_ref, _, _ = reference_callback()
    fx, other = pause_until_blocked(CallbackFx, lambda fx: (fx.run.train(), fx.run.params),
                                    at=T // 2)
    try:
        other.start()
        phi = fx.run.train()
        phi2, theta2 = other.get()
        assert phi == phi_ref and phi2 == phi_ref
        assert np.array_equal(theta2, theta_ref)
    finally:
        fx.close()


def test_reverse_during_train():
    _, _, glr_ref, gw_ref = reference_callback()
    fx, other = pause_until_blocked(CallbackFx, lambda fx: fx.run.reverse(), at=T // 2)
    try:
        other.start()
        fx.run.train()
        other.get()                   # waited for train(), then reversed it
        assert np.array_equal(fx.lr.grad, glr_ref) and np.array_equal(fx.w.grad, gw_ref)
    finally:
        fx.close()


def test_meta_value_set_during_train():
    new = np.full(T, 0.05)
    phi_ref = reference_callback()[0]
    phi_new, theta_new, glr_new, _ = reference_callback(lr_value=new)

    def set_value(fx):
        fx.lr.value = new
    fx, other = pause_until_blocked(CallbackFx, set_value, at=T // 2)
    try:
        other.start()
        phi = fx.run.train()
        other.get()
        assert phi == phi_ref         # trained with the old value, whole
        assert np.array_equal(fx.lr.value, new)
        with pytest.raises(mg.OrderError):
            fx.run.reverse()          # the value changed: no trajectory for it
        assert fx.run.train() == phi_new
        fx.run.reverse()
        assert np.array_equal(fx.run.params, theta_new)
        assert np.array_equal(fx.lr.grad, glr_new)
    finally:
        fx.close()


def test_closed_while_another_thread_waits():
    """A thread waiting for the lock to reverse a run that is closed in the
    meantime gets ClosedError instead of reaching C with a freed run."""
    phi_ref = reference_callback()[0]
    inside = threading.Event()

    def pause():
        inside.set()
        wait_until_blocked(fx.ctx)    # the other thread waits to reverse
        fx.run.close()                # from the callback: freed after train()
    fx = CallbackFx(at=T // 2, pause=pause)
    try:
        other = Worker(lambda: (wait(inside), fx.run.reverse()))
        other.start()
        assert fx.run.train() == phi_ref
        with pytest.raises(mg.ClosedError):
            other.get()
        assert fx.ctx.memory()[0] == fx.base
    finally:
        fx.close()


def test_different_contexts_run_in_parallel():
    """Calls on different contexts are not serialised: each training thread
    waits, inside C, until the other is inside C too."""
    phi_ref = reference_callback()[0]
    here = [threading.Event(), threading.Event()]
    fxs = []
    for i in range(2):
        def pause(i=i):
            here[i].set()
            wait(here[1 - i])
        fxs.append(CallbackFx(at=T // 2, pause=pause))
    try:
        workers = [Worker(fx.run.train) for fx in fxs]
        for w in workers:
            w.start()
        assert [w.get() for w in workers] == [phi_ref, phi_ref]
    finally:
        for fx in fxs:
            fx.close()


# ---------------------------------------------------------------- from inside a callback

def test_calls_from_a_callback():
    """What a callable plausibly does from inside C, on the training thread:
    read-only getters work (no deadlock), modifying calls on the run in
    progress raise BusyError, close() and collection are deferred to the
    end of the call in progress, and the run completes exactly."""
    phi_ref = reference_callback()[0]
    got = {}

    def pause():
        run, ctx = fx.run, fx.ctx
        got["num_params"] = run.num_params
        got["value"] = fx.lr.value
        got["stats"] = run.stats
        got["len"] = len(fx.train)
        with pytest.raises(mg.OrderError) as e:
            run.params                # allowed, but there is no θ_T during train()
        got["params"] = type(e.value)
        for name, call in (("train", run.train), ("reverse", run.reverse),
                           ("evaluate", lambda: run.evaluate(fx.val)),
                           ("set", lambda: setattr(fx.lr, "value", np.zeros(T))),
                           ("add_meta", lambda: run.add_meta("momentum"))):
            with pytest.raises(mg.BusyError, match="in use") as e:
                call()
            assert isinstance(e.value, mg.OrderError)
            got[name] = str(e.value)
        # other objects of the context may be used from the callback
        spare = mg.Model(ctx, F).dense(C)
        got["spare"] = spare.num_params
        extra = data(ctx, 10, 9)
        cycle = [extra]
        cycle.append(cycle)
        got["memory"] = ctx.memory()[0]
        del cycle, extra, spare
        gc.collect()                  # __del__ of `extra` and `spare`: deferred
        got["memory_after_gc"] = ctx.memory()[0]
        fx.val.close()                # the run's validation set: C keeps it
        fx.run.close()                # deferred too
        got["closed"] = fx.run.closed

    fx = CallbackFx(at=T // 2, pause=pause)
    try:
        phi = fx.run.train()
        assert phi == phi_ref
        assert got["num_params"] == Softmax.P and got["len"] == N
        assert got["params"] is mg.OrderError  # C's answer, not BusyError
        assert got["spare"] == C * F + C
        assert np.array_equal(got["value"], np.full(T, 0.1))
        assert "steps_run" in got["stats"]
        assert got["memory_after_gc"] == got["memory"] > fx.base  # nothing freed inside
        assert "mgrad_run_train" in got["train"] and "Run" in got["train"]
        assert got["closed"]
        # once train() returned: the run, the validation set it kept, the
        # collected model and dataset are freed; the training set is open
        assert fx.ctx.memory()[0] == fx.train_bytes
    finally:
        fx.close()


def test_calls_from_mgd_progress():
    """The same from an MGD's progress callable, between meta-steps inside
    mgrad_mgd_run: the optimiser and its run may be read, not changed."""
    seen_ref, best_ref, value_ref, _ = reference_mgd(3)
    got = {}

    def pause():
        got["steps"] = fx.mgd.steps
        got["best"] = fx.mgd.best()
        got["value"] = fx.lr.value
        for name, call in (("step", fx.mgd.step), ("run", lambda: fx.mgd.run(1)),
                           ("train", fx.run.train),
                           ("set", lambda: setattr(fx.lr, "value", np.zeros(T)))):
            with pytest.raises(mg.BusyError):
                call()
            got[name] = True
    fx = BuiltinFx(pause_at=1, pause=pause)
    try:
        fx.mgd.run(3)
        assert fx.seen == seen_ref and np.array_equal(fx.lr.value, value_ref)
        assert got["steps"] == 2 and all(got[k] for k in ("step", "run", "train", "set"))
        assert got["best"][1] == min(score for _, _, score in seen_ref[:2])
        assert got["value"].shape == (T,)
        best, score = fx.mgd.best()
        assert np.array_equal(best, best_ref[0]) and score == best_ref[1]
    finally:
        fx.close()
