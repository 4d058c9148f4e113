/* coroutine.aio's driver, compiled: run_sync's awaitable (`Bridge`) and `await_`.
 *
 * The same handshake as the reference, src/coroutine/_bridge.py (rules A1-A6 and W1 in its
 * docstring), on the same kind of state. One difference of shape: the reference's driver is a
 * generator that delegates to the awaitable in flight with `yield from`; here the Bridge is
 * itself the iterator the task's `await` delegates to, and does PEP 380's delegation by hand:
 * `send`, `throw` and `close` go to the awaitable in flight (`inner`), and what it raises goes
 * to the body, at its `await_` (A5). `inner` is therefore kept while the task is suspended in
 * it (the reference keeps it in the generator's frame).
 *
 * A body awaits in three steps, two switches: `await_` switches to the driver with SIG_AWAIT; the
 * driver sends None to the awaitable's iterator (PyIter_Send: a native coroutine runs without
 * a StopIteration object), and if it returns at once, switches straight back with its value;
 * else it yields what the awaitable yielded to the event loop, and the next send resumes it.
 *
 * `await_` finds its bridge from the current greenlet: the body's, found first in a one-entry
 * cache (`last`), or by walking up greenlet parents (nested coroutines' workers) to a greenlet
 * that carries the bridge's weak reference under MARK.
 *
 * The only functions here that switch greenlets are `start`, `resume` and `aio_await`.
 */

#include "speedups.h"

enum { B_CREATED, B_RUNNING, B_AWAITING, B_DONE }; /* _bridge.CREATED, ... */

typedef struct {
    PyObject_HEAD
    PyObject *fn, *args, *kwargs; /* the body's call; fn is kept for the repr */
    PyObject *body;               /* the body's greenlet once started; NULL once done */
    PyObject *waiter;             /* the greenlet that last called await_ (or the body) */
    PyObject *driver;             /* the greenlet that last switched in: the body's parent */
    PyObject *inner;              /* the awaitable's iterator, from await_ until it is done */
    PyObject *weakrefs;
    int state, closing;
    unsigned long thread;
} Bridge;

static PyTypeObject BridgeType;
static PyObject *SIG_AWAIT;  /* await_ -> driver: `inner` is to be awaited */
static PyObject *thrown_type; /* _bridge.Thrown: driver -> await_, an exception to raise */
static PyObject *a_mark, *a_throw, *a_close, *a_value, *a_exc;
static PyObject *py_outside, *py_not_running, *py_awaitable_iter, *py_stop_error,
    *py_wrong_thread, *py_foreign, *py_abandoned;
static int aio_ready;
static Bridge *last; /* borrowed: the bridge whose body last ran (cleared when it dies) */

/* Raise the exception that the Python builder `fn(arg)` returns. Always NULL. */
static PyObject *
raise_built(PyObject *fn, PyObject *arg)
{
    PyObject *err = arg ? PyObject_CallOneArg(fn, arg) : PyObject_CallNoArgs(fn);
    if (err != NULL) {
        PyErr_SetObject((PyObject *)Py_TYPE(err), err);
        Py_DECREF(err);
    }
    return NULL;
}

/* -- the body's side: await_ ------------------------------------------------------------ */

/* getattr(obj, name, None) without an AttributeError made and dropped: 1 found, 0 not, -1. */
static inline int
lookup_attr(PyObject *obj, PyObject *name, PyObject **out)
{
#if PY_VERSION_HEX >= 0x030D0000
    return PyObject_GetOptionalAttr(obj, name, out);
#else
    return _PyObject_LookupAttr(obj, name, out);
#endif
}

/* A weak reference's referent, borrowed (Py_None if dead): the ref is alive meanwhile. */
static inline PyObject *
weak_target(PyObject *ref)
{
    PyObject *obj = ((PyWeakReference *)ref)->wr_object;
    return Py_REFCNT(obj) > 0 ? obj : Py_None;
}

static inline int
is_dead(PyObject *g) /* started and finished */
{
    return PyGreenlet_STARTED((PyGreenlet *)g) && !PyGreenlet_ACTIVE((PyGreenlet *)g);
}

/* The bridge whose body `g` runs in (directly, or through nested coroutines), borrowed; NULL
 * (no error) if none, NULL with an error if the lookup failed. */
static Bridge *
bridge_of(PyObject *g)
{
    Py_INCREF(g);
    while (g != NULL) {
        if (last != NULL && last->body == g) {
            Py_DECREF(g);
            return last;
        }
        PyObject *ref = NULL;
        if (lookup_attr(g, a_mark, &ref) < 0) {
            Py_DECREF(g);
            return NULL;
        }
        if (ref != NULL) {
            PyObject *b = PyWeakref_Check(ref) ? weak_target(ref) : Py_None; /* borrowed */
            Py_DECREF(ref);
            Py_DECREF(g);
            if (!Py_IS_TYPE(b, &BridgeType))
                return NULL; /* its bridge is gone */
            last = (Bridge *)b;
            return last;
        }
        PyGreenlet *parent = PyGreenlet_GetParent((PyGreenlet *)g);
        Py_DECREF(g);
        if (parent == NULL && PyErr_Occurred())
            return NULL;
        g = (PyObject *)parent;
    }
    return NULL;
}

/* _bridge.awaitable_iter: what `await aw` delegates to (new reference). */
static PyObject *
awaitable_iter(PyObject *aw)
{
    PyTypeObject *t = Py_TYPE(aw);
    if (t == &PyCoro_Type)
        return Py_NewRef(aw);
    if (t->tp_as_async != NULL && t->tp_as_async->am_await != NULL) {
        PyObject *it = t->tp_as_async->am_await(aw);
        if (it == NULL)
            return NULL;
        if (Py_TYPE(it)->tp_iternext != NULL && !PyCoro_CheckExact(it))
            return it;
        Py_DECREF(it);
    }
    return PyObject_CallOneArg(py_awaitable_iter, aw); /* the rest, and the TypeError */
}

static PyObject *
aio_await(PyObject *mod, PyObject *aw)
{
    if (!aio_ready)
        return PyErr_Format(PyExc_RuntimeError, "coroutine._speedups.await_ before aio_setup()");
    PyObject *current = (PyObject *)PyGreenlet_GetCurrent();
    if (current == NULL)
        return NULL;
    Bridge *b = bridge_of(current);
    if (b == NULL) {
        Py_DECREF(current);
        return PyErr_Occurred() ? NULL : raise_built(py_outside, aw);
    }
    if (b->state != B_RUNNING) {
        Py_DECREF(current);
        return raise_built(py_not_running, aw);
    }
    PyObject *it = awaitable_iter(aw);
    if (it == NULL) {
        Py_DECREF(current);
        return NULL;
    }
    /* W1: inner and waiter, never the state; no reference to the bridge across the switch */
    Py_XSETREF(b->inner, it);
    Py_XSETREF(b->waiter, current);
    PyObject *driver = Py_NewRef(b->driver);
    b = NULL;
    PyObject *out = switch_to(driver, SIG_AWAIT);
    Py_DECREF(driver);
    if (out == NULL || Py_TYPE(out) != (PyTypeObject *)thrown_type)
        return out; /* the awaitable's result, or NULL: raised at the switch (GreenletExit) */
    PyObject *exc = PyObject_GetAttr(out, a_exc);
    Py_DECREF(out);
    if (exc == NULL)
        return NULL;
    PyErr_SetObject((PyObject *)Py_TYPE(exc), exc); /* chained to what the body handles */
    Py_DECREF(exc);
    return NULL;
}

/* -- the driver's side ------------------------------------------------------------------- */

/* A3: something was raised at the switch into the body. Returns -1 (with it raised). */
static int
recover(Bridge *self)
{
    if (self->body != NULL && is_dead(self->body)) { /* the body ended, raising it */
        self->state = B_DONE;
        Py_CLEAR(self->body);
        Py_CLEAR(self->waiter);
        if (PyErr_ExceptionMatches(PyExc_StopIteration)
            || PyErr_ExceptionMatches(PyExc_StopAsyncIteration)) { /* PEP 479 */
            PyObject *exc = fetch_exc();
            PyObject *err = PyObject_CallOneArg(py_stop_error, exc);
            if (err != NULL) {
                PyException_SetCause(err, Py_NewRef(exc));
                PyErr_SetObject((PyObject *)Py_TYPE(err), err); /* (its context: exc) */
                Py_DECREF(err);
            }
            Py_DECREF(exc);
        }
        return -1;
    }
    if (self->state == B_RUNNING) { /* the switch never happened */
        if (self->body != NULL && PyGreenlet_ACTIVE((PyGreenlet *)self->body))
            self->state = B_AWAITING;
        else {
            self->state = B_CREATED;
            Py_CLEAR(self->body);
            Py_CLEAR(self->waiter);
        }
    }
    return -1;
}

/* The body gives up for good, left where it waits (A6). Returns -1 (RuntimeError raised). */
static int
abandon(Bridge *self)
{
    PyObject *inner = self->inner;
    self->inner = NULL;
    self->state = B_DONE;
    Py_CLEAR(self->body);
    Py_CLEAR(self->waiter);
    if (inner != NULL && PyCoro_CheckExact(inner)) { /* never awaited: no warning */
        PyObject *r = PyObject_CallMethodNoArgs(inner, a_close);
        Py_XDECREF(r);
        PyErr_Clear();
    }
    Py_XDECREF(inner);
    raise_built(py_abandoned, NULL);
    return -1;
}

/* A4: what the switch into the body came back with (consumed). 1: the body awaits (`inner`);
 * 0: it ended, *ended its return value; -1: raised. */
static int
landed(Bridge *self, PyObject *out, PyObject **ended)
{
    if (out == SIG_AWAIT) {
        Py_DECREF(out);
        self->state = B_AWAITING;
        return self->closing ? abandon(self) : 1;
    }
    if (self->body != NULL && is_dead(self->body)) {
        self->state = B_DONE;
        Py_CLEAR(self->body);
        Py_CLEAR(self->waiter);
        *ended = out;
        return 0;
    }
    abandon(self);
    PyErr_Clear();
    raise_built(py_foreign, out);
    Py_DECREF(out);
    return -1;
}

/* A1, then A2. */
static int
adopt(Bridge *self, PyObject *driver)
{
    if (self->thread != PyThread_get_thread_ident()) {
        raise_built(py_wrong_thread, NULL);
        return -1;
    }
    if (PyGreenlet_SetParent((PyGreenlet *)self->body, (PyGreenlet *)driver) < 0)
        return -1;
    Py_XSETREF(self->driver, Py_NewRef(driver));
    return 0;
}

/* Bridge.start: run fn(*args, **kwargs) in a new body greenlet; as `landed`. */
static int
start(Bridge *self, PyObject **ended)
{
    PyObject *driver = (PyObject *)PyGreenlet_GetCurrent();
    if (driver == NULL)
        return -1;
    PyObject *body = (PyObject *)PyGreenlet_New(self->fn, (PyGreenlet *)driver);
    PyObject *vars = NULL, *ref = NULL;
    if (body == NULL)
        goto fail;
    /* the body runs in the awaiting task's contextvars context */
    vars = gr_context.get ? gr_context.get(driver, gr_context.closure)
                          : PyObject_GetAttrString(driver, "gr_context");
    if (vars == NULL)
        goto fail;
    if ((gr_context.set ? gr_context.set(body, vars, gr_context.closure)
                        : PyObject_SetAttrString(body, "gr_context", vars))
        < 0)
        goto fail;
    ref = PyWeakref_NewRef((PyObject *)self, NULL);
    if (ref == NULL || PyObject_SetAttr(body, a_mark, ref) < 0)
        goto fail;
    Py_DECREF(ref);
    Py_DECREF(vars);
    Py_XSETREF(self->body, body);
    Py_XSETREF(self->waiter, Py_NewRef(body));
    Py_XSETREF(self->driver, driver);
    self->thread = PyThread_get_thread_ident();
    self->state = B_RUNNING; /* A3 */
    last = self;
    PyObject *kwargs = PyDict_GET_SIZE(self->kwargs) ? self->kwargs : NULL;
    Py_INCREF(body);
    PyObject *out = PyGreenlet_Switch((PyGreenlet *)body, self->args, kwargs);
    Py_DECREF(body);
    return out == NULL ? recover(self) : landed(self, out, ended);
fail:
    Py_XDECREF(ref);
    Py_XDECREF(vars);
    Py_XDECREF(body);
    Py_DECREF(driver);
    return -1;
}

/* Bridge.resume: switch into the greenlet waiting in await_ with `value`, or raising `exc`
 * there (A1-A3); as `landed` (A4). */
static int
resume(Bridge *self, PyObject *value, PyObject *exc, PyObject **ended)
{
    PyObject *driver = (PyObject *)PyGreenlet_GetCurrent();
    if (driver == NULL)
        return -1;
    int r = driver == self->driver ? 0 : adopt(self, driver);
    Py_DECREF(driver);
    if (r < 0)
        return -1;
    PyObject *thrown = NULL;
    if (exc != NULL) {
        if (PyErr_GivenExceptionMatches(exc, PyExc_GeneratorExit))
            self->closing = 1;
        if ((thrown = PyObject_CallOneArg(thrown_type, exc)) == NULL)
            return -1;
        value = thrown;
    }
    self->state = B_RUNNING; /* A3 */
    last = self;
    PyObject *waiter = Py_NewRef(self->waiter);
    PyObject *out = switch_to(waiter, value);
    Py_DECREF(waiter);
    Py_XDECREF(thrown);
    return out == NULL ? recover(self) : landed(self, out, ended);
}

/* What PyIter_Send on the awaitable in flight gave (`s`, `res`): its iterator is dropped
 * unless it yielded; its result or exception resumes the body (A5). */
static int
resumed_by(Bridge *self, PySendResult s, PyObject *res, PyObject **ended)
{
    Py_CLEAR(self->inner);
    if (s == PYGEN_RETURN) {
        int r = resume(self, res, NULL, ended);
        Py_DECREF(res);
        return r;
    }
    PyObject *exc = fetch_exc();
    int r = resume(self, NULL, exc, ended);
    Py_DECREF(exc);
    return r;
}

/* The driver's loop, after a start or resume gave `r`: await what the body awaits, resuming
 * it with each result, until an awaitable suspends (PYGEN_NEXT: *result is what it yielded,
 * for the event loop) or the body ends (PYGEN_RETURN: *result is its return value). */
static PySendResult
await_loop(Bridge *self, int r, PyObject *ended, PyObject **result)
{
    while (r == 1) {
        PyObject *it = Py_NewRef(self->inner), *res = NULL;
        PySendResult s = PyIter_Send(it, Py_None, &res);
        Py_DECREF(it);
        if (s == PYGEN_NEXT) {
            *result = res;
            return PYGEN_NEXT;
        }
        r = resumed_by(self, s, res, &ended);
    }
    if (r < 0)
        return PYGEN_ERROR;
    *result = ended;
    return PYGEN_RETURN;
}

static int
refuse(Bridge *self) /* the states in which the task cannot step the driver: -1, raised */
{
    if (self->state == B_RUNNING)
        PyErr_SetString(PyExc_ValueError, "run_sync's driver is already running");
    else
        PyErr_SetString(PyExc_RuntimeError, "cannot reuse an already awaited run_sync");
    return -1;
}

static PySendResult
Bridge_am_send(Bridge *self, PyObject *arg, PyObject **result)
{
    PyObject *ended = NULL, *res = NULL;
    if (self->state == B_AWAITING && self->inner != NULL) { /* the common case */
        PyObject *it = Py_NewRef(self->inner);
        PySendResult s = PyIter_Send(it, arg, &res);
        Py_DECREF(it);
        if (s == PYGEN_NEXT) {
            *result = res;
            return PYGEN_NEXT;
        }
        int r = resumed_by(self, s, res, &ended); /* (before `ended` is read) */
        return await_loop(self, r, ended, result);
    }
    if (self->state == B_CREATED) {
        if (arg != Py_None) {
            PyErr_SetString(PyExc_TypeError,
                            "can't send non-None value to a just-started coroutine");
            return PYGEN_ERROR;
        }
        int r = start(self, &ended);
        return await_loop(self, r, ended, result);
    }
    refuse(self);
    return PYGEN_ERROR;
}

static PyObject *
returned(PySendResult s, PyObject *result) /* a method's answer: the value or StopIteration */
{
    if (s == PYGEN_NEXT)
        return result;
    if (s == PYGEN_RETURN) {
        PyObject *stop = PyObject_CallOneArg(PyExc_StopIteration, result);
        Py_DECREF(result);
        if (stop != NULL) {
            PyErr_SetObject(PyExc_StopIteration, stop);
            Py_DECREF(stop);
        }
    }
    return NULL;
}

static PyObject *
Bridge_iternext(Bridge *self)
{
    PyObject *result = NULL;
    PySendResult s = Bridge_am_send(self, Py_None, &result);
    if (s == PYGEN_RETURN && result == Py_None) {
        Py_DECREF(result);
        return NULL; /* exhausted, with None */
    }
    return returned(s, result);
}

static PyObject *
Bridge_send(Bridge *self, PyObject *arg)
{
    PyObject *result = NULL;
    PySendResult s = Bridge_am_send(self, arg, &result);
    return returned(s, result); /* (not in one expression: `result` is read after) */
}

/* iterator.close(), if it has one: 0, or -1 with what it raised. */
static int
close_iter(PyObject *it)
{
    PyObject *meth = PyObject_GetAttr(it, a_close);
    if (meth == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_AttributeError))
            return -1;
        PyErr_Clear();
        return 0;
    }
    PyObject *r = PyObject_CallNoArgs(meth);
    Py_DECREF(meth);
    Py_XDECREF(r);
    return r == NULL ? -1 : 0;
}

/* throw(exc) into the awaitable in flight (PEP 380), the body getting what comes out. */
static int
throw_in(Bridge *self, PyObject *exc, PyObject **ended, PyObject **yielded)
{
    PyObject *it = self->inner;
    if (it == NULL)
        return resume(self, NULL, exc, ended);
    self->inner = NULL;
    if (PyErr_GivenExceptionMatches(exc, PyExc_GeneratorExit)) {
        int r = close_iter(it);
        Py_DECREF(it);
        if (r == 0)
            return resume(self, NULL, exc, ended);
        PyObject *err = fetch_exc();
        r = resume(self, NULL, err, ended);
        Py_DECREF(err);
        return r;
    }
    PyObject *meth = PyObject_GetAttr(it, a_throw);
    if (meth == NULL) {
        Py_DECREF(it);
        if (!PyErr_ExceptionMatches(PyExc_AttributeError))
            return -1;
        PyErr_Clear();
        return resume(self, NULL, exc, ended);
    }
    PyObject *res = PyObject_CallOneArg(meth, exc);
    Py_DECREF(meth);
    if (res != NULL) { /* it yielded: still in flight */
        self->inner = it;
        *yielded = res;
        return 2;
    }
    Py_DECREF(it);
    if (!PyErr_ExceptionMatches(PyExc_StopIteration))
        return resumed_by(self, PYGEN_ERROR, NULL, ended);
    PyObject *stop = fetch_exc();
    res = PyObject_GetAttr(stop, a_value);
    Py_DECREF(stop);
    return res == NULL ? -1 : resumed_by(self, PYGEN_RETURN, res, ended);
}

/* throw(exc), throw(type[, value[, traceback]]): as a coroutine's. */
static PyObject *
Bridge_throw(Bridge *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 1 || nargs > 3)
        return PyErr_Format(PyExc_TypeError, "throw expected 1 to 3 arguments, got %zd", nargs);
    PyObject *typ = args[0], *val = nargs > 1 ? args[1] : NULL, *tb = nargs > 2 ? args[2] : NULL;
    if (!PyExceptionClass_Check(typ) && !PyExceptionInstance_Check(typ))
        return PyErr_Format(PyExc_TypeError,
                            "exceptions must be classes or instances deriving from "
                            "BaseException, not %s",
                            Py_TYPE(typ)->tp_name);
    if (PyExceptionInstance_Check(typ) && val != NULL && val != Py_None)
        return PyErr_Format(PyExc_TypeError, "instance exception may not have a separate value");
    if (PyExceptionInstance_Check(typ))
        PyErr_SetObject((PyObject *)Py_TYPE(typ), typ);
    else
        PyErr_SetObject(typ, val);
    PyObject *exc = fetch_exc();
    if (exc == NULL)
        return NULL;
    if (tb != NULL && tb != Py_None && PyException_SetTraceback(exc, tb) < 0) {
        Py_DECREF(exc);
        return NULL;
    }
    if (self->state == B_CREATED || self->state == B_DONE) {
        self->state = B_DONE;
        restore_exc(exc);
        return NULL;
    }
    if (self->state != B_AWAITING) {
        Py_DECREF(exc);
        refuse(self);
        return NULL;
    }
    PyObject *ended = NULL, *result = NULL;
    int r = throw_in(self, exc, &ended, &result);
    Py_DECREF(exc);
    if (r == 2)
        return result;
    PySendResult s = await_loop(self, r, ended, &result);
    return returned(s, result);
}

/* close(): unwind a waiting body (GeneratorExit at its await_); 0, or -1 raised. */
static int
close_bridge(Bridge *self)
{
    if (self->state == B_CREATED || self->state == B_DONE) {
        self->state = B_DONE;
        return 0;
    }
    if (self->state != B_AWAITING)
        return refuse(self);
    self->closing = 1;
    PyObject *exc = PyObject_CallNoArgs(PyExc_GeneratorExit);
    if (exc == NULL)
        return -1;
    PyObject *ended = NULL, *yielded = NULL;
    int r = throw_in(self, exc, &ended, &yielded); /* (closing: never awaits again, never 1) */
    Py_DECREF(exc);
    if (r >= 0) {
        Py_XDECREF(ended);
        Py_XDECREF(yielded);
        return 0;
    }
    if (!PyErr_ExceptionMatches(PyExc_GeneratorExit))
        return -1;
    PyErr_Clear();
    return 0;
}

static PyObject *
Bridge_close(Bridge *self, PyObject *unused)
{
    return close_bridge(self) < 0 ? NULL : Py_NewRef(Py_None);
}

static PyObject *
Bridge_await(Bridge *self)
{
    return Py_NewRef(self);
}

/* A6: a bridge dropped while its body waits unwinds it, on the body's own thread. */
static void
Bridge_finalize(Bridge *self)
{
    if (self->state != B_AWAITING || self->body == NULL
        || !PyGreenlet_ACTIVE((PyGreenlet *)self->body)
        || self->thread != PyThread_get_thread_ident())
        return;
    PyObject *saved = fetch_exc();
    if (close_bridge(self) < 0)
        PyErr_WriteUnraisable((PyObject *)self);
    if (saved != NULL)
        restore_exc(saved);
}

static int
Bridge_traverse(Bridge *self, visitproc visit, void *arg)
{
    Py_VISIT(self->fn);
    Py_VISIT(self->args);
    Py_VISIT(self->kwargs);
    Py_VISIT(self->body);
    Py_VISIT(self->waiter);
    Py_VISIT(self->driver);
    Py_VISIT(self->inner);
    return 0;
}

static int
Bridge_clear(Bridge *self)
{
    Py_CLEAR(self->fn);
    Py_CLEAR(self->args);
    Py_CLEAR(self->kwargs);
    Py_CLEAR(self->body);
    Py_CLEAR(self->waiter);
    Py_CLEAR(self->driver);
    Py_CLEAR(self->inner);
    return 0;
}

static void
Bridge_dealloc(Bridge *self)
{
    if (PyObject_CallFinalizerFromDealloc((PyObject *)self) < 0)
        return; /* resurrected */
    PyObject_GC_UnTrack(self);
    if (last == self)
        last = NULL;
    if (self->weakrefs != NULL)
        PyObject_ClearWeakRefs((PyObject *)self);
    Bridge_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
Bridge_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    PyObject *fn, *fargs, *fkwargs;
    if (!aio_ready)
        return PyErr_Format(PyExc_RuntimeError, "coroutine._speedups.Bridge before aio_setup()");
    if (!PyArg_ParseTuple(args, "OO!O!:Bridge", &fn, &PyTuple_Type, &fargs, &PyDict_Type,
                          &fkwargs))
        return NULL;
    Bridge *self = (Bridge *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->fn = Py_NewRef(fn);
    self->args = Py_NewRef(fargs);
    self->kwargs = Py_NewRef(fkwargs);
    self->state = B_CREATED;
    self->thread = PyThread_get_thread_ident();
    return (PyObject *)self;
}

static PyObject *
Bridge_repr(Bridge *self)
{
    static const char *names[] = {"created", "running", "awaiting", "done"};
    return PyUnicode_FromFormat("<run_sync driver of %R, %s>", self->fn, names[self->state]);
}

static PyAsyncMethods Bridge_async = {
    .am_await = (unaryfunc)Bridge_await,
    .am_send = (sendfunc)Bridge_am_send,
};

static PyMethodDef Bridge_methods[] = {
    {"send", (PyCFunction)Bridge_send, METH_O, "Resume with a value (PEP 380)."},
    {"throw", (PyCFunction)(void (*)(void))Bridge_throw, METH_FASTCALL,
     "Raise an exception in the awaitable in flight, else in the body (PEP 380)."},
    {"close", (PyCFunction)Bridge_close, METH_NOARGS, "Unwind a waiting body."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject BridgeType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "coroutine._speedups.Bridge",
    .tp_basicsize = sizeof(Bridge),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = Bridge_new,
    .tp_dealloc = (destructor)Bridge_dealloc,
    .tp_finalize = (destructor)Bridge_finalize,
    .tp_traverse = (traverseproc)Bridge_traverse,
    .tp_clear = (inquiry)Bridge_clear,
    .tp_repr = (reprfunc)Bridge_repr,
    .tp_as_async = &Bridge_async,
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = (iternextfunc)Bridge_iternext,
    .tp_methods = Bridge_methods,
    .tp_weaklistoffset = offsetof(Bridge, weakrefs),
    .tp_doc = "run_sync's driver, compiled: the iterator its coroutine awaits (_bridge.drive).",
};

/* -- setup ------------------------------------------------------------------------------- */

static int
take_fn(PyObject *ns, const char *name, PyObject **out)
{
    PyObject *v = PyDict_GetItemString(ns, name);
    if (v == NULL) {
        PyErr_Format(PyExc_KeyError, "coroutine._speedups.aio_setup: %s missing", name);
        return -1;
    }
    Py_XSETREF(*out, Py_NewRef(v));
    return 0;
}

static PyObject *
aio_setup(PyObject *mod, PyObject *ns)
{
    if (!PyDict_Check(ns))
        return PyErr_Format(PyExc_TypeError, "aio_setup(namespace: dict)");
    PyObject *mark = NULL;
    if (take_fn(ns, "outside", &py_outside) || take_fn(ns, "not_running", &py_not_running)
        || take_fn(ns, "awaitable_iter", &py_awaitable_iter)
        || take_fn(ns, "stop_error", &py_stop_error)
        || take_fn(ns, "wrong_thread", &py_wrong_thread) || take_fn(ns, "foreign", &py_foreign)
        || take_fn(ns, "abandoned", &py_abandoned) || take_fn(ns, "Thrown", &thrown_type)
        || take_fn(ns, "MARK", &mark))
        return NULL;
    if (!PyType_Check(thrown_type)) {
        Py_DECREF(mark);
        return PyErr_Format(PyExc_TypeError, "aio_setup: Thrown must be a class");
    }
    if (!PyUnicode_Check(mark)) {
        Py_DECREF(mark);
        return PyErr_Format(PyExc_TypeError, "aio_setup: MARK must be a str");
    }
    PyUnicode_InternInPlace(&mark);
    Py_XSETREF(a_mark, mark);
    aio_ready = 1;
    Py_RETURN_NONE;
}

/* _bridge.await_'s docstring (tests/test_aio.py checks that they agree) */
PyDoc_STRVAR(await_doc,
"await_($module, aw, /)\n"
"--\n"
"\n"
"Wait for `aw` from synchronous code run by `run_sync`, at any depth; return its result.\n"
"\n"
"The whole body, the `New` coroutines it is running included, waits while the task that\n"
"awaits `run_sync` awaits `aw`; the event loop runs other tasks meanwhile.\n"
"\n"
">>> import asyncio\n"
">>> from coroutine.aio import await_, run_sync\n"
">>> def total(n: int) -> int:  # synchronous, waits on async work\n"
"...     return sum(await_(asyncio.sleep(0, result=i)) for i in range(n))\n"
">>> asyncio.run(run_sync(total, 4))\n"
"6\n"
"\n"
"Raises:\n"
"    NotInCoroutineError: not inside a `run_sync` body (on this thread); a coroutine\n"
"        passed is closed, so it does not warn that it was never awaited.\n"
"    TypeError: `aw` is not awaitable.\n"
"    BaseException: what awaiting `aw` raised, cancellation included (raised here, chained\n"
"        to the exception being handled, as ``await`` would).");

static PyMethodDef aio_functions[] = {
    {"await_", (PyCFunction)aio_await, METH_O, await_doc},
    {"aio_setup", aio_setup, METH_O, "Bind the bridge to its Python helpers (_bridge)."},
    {NULL, NULL, 0, NULL},
};

/* Called once by PyInit__speedups (module.c). */
int
coroutine_aio_init(PyObject *m)
{
    if (PyType_Ready(&BridgeType) < 0)
        return -1;
    if ((SIG_AWAIT = PyObject_CallNoArgs((PyObject *)&PyBaseObject_Type)) == NULL)
        return -1;
    if ((a_throw = PyUnicode_InternFromString("throw")) == NULL
        || (a_close = PyUnicode_InternFromString("close")) == NULL
        || (a_value = PyUnicode_InternFromString("value")) == NULL
        || (a_exc = PyUnicode_InternFromString("exc")) == NULL)
        return -1;
    if (PyModule_AddObjectRef(m, "Bridge", (PyObject *)&BridgeType) < 0)
        return -1;
    return PyModule_AddFunctions(m, aio_functions);
}
