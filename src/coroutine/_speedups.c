/* coroutine._speedups: the switch protocol's hot paths, compiled.
 *
 * Theory of operation. This file is an optional accelerator, not a second implementation:
 * `_context.py`, `_yield.py`, `_coroutine.py` and `_run.py` stay the reference, and every
 * function here is a statement-for-statement translation of the common case of one of them,
 * reading and writing the same `__slots__` of the same Python objects (at the offsets their
 * member descriptors give). Anything rare -- a refusal, a stop, a durable coroutine, an
 * error to build, `recover`, the slow path of `_advance` -- calls back into the Python
 * function that is the reference. The numbered rules of `_context`'s docstring hold here
 * as there:
 *
 *   D1  `resume` refuses through the Python `adopt` before it writes anything.
 *   D2  the worker's parent is set to the driver (`PyGreenlet_SetParent`) whenever they differ.
 *   D3  RUNNING (and `_exc`) written last before `PyGreenlet_Switch`; a failed switch calls
 *       the Python `recover` with the exception as the handled one (so `sys.exc_info()` there
 *       is what the Python `except` block would see), then re-raises it.
 *   B1  the yield site checks the greenlet and the state before writing anything (else it
 *       runs the Python yield function, which refuses with the reference's words).
 *   B2  `_recv`, `_sent`, then SUSPENDED written last; a failed switch restores RUNNING and
 *       `_recv` if the state is still SUSPENDED.
 *   E1  `ended` mirrors the Python one; the worker goes back to the pool in C.
 *
 * The only functions here that switch greenlets are `resume_body`, `start_body` and
 * `YieldSite_call` (tests/test_switch_protocol.py greps this file for PyGreenlet_Switch).
 *
 * Memory invariant (as in `_context`): the yield site holds, across its switch, only the
 * context, the driver greenlet and the values; never the Coroutine object or the worker.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pythread.h>
#include <stddef.h>
#include <structmember.h>

#include "greenlet.h"

/* -- objects from the Python side, set once by setup() ------------------------------------- */

static int ready = 0;
static PyObject *CREATED, *SUSPENDED, *RUNNING, *DONE;
static PyObject *NOTHING, *THROWN, *ABANDONED, *PARKED;
static PyObject *CURRENT;                 /* the ContextVar */
static PyTypeObject *SignalType, *CoroType, *CtxType;
static PyObject *py_recover, *py_ended, *py_adopt, *py_signalled, *py_killed;
static PyObject *py_del, *py_create, *py_check_entry, *py_acquire, *py_bad_send, *py_resume;
static PyObject *durable_module;          /* _durable, for its DURABLE flag */
static PyObject *worker_local;            /* _worker._local (threading.local) */
static Py_ssize_t pool_cap;
static PyObject *s_advance, *s_close, *s_pool, *s_poolable, *s_gr_context, *s_DURABLE;
static PyObject *s_Next, *s_next, *s_send, *empty_tuple;

/* slot offsets */
static Py_ssize_t c_state, c_sig, c_stopping, c_durable, c_sent, c_driver, c_recv, c_exc,
    c_gid, c_vars, c_result, c_thread, c_coro, c_exit;
static Py_ssize_t k_ctx, k_g, k_fn, k_body, k_with_return;
static Py_ssize_t g_check_s, g_s;
static PyTypeObject *worker_type; /* the last greenlet subclass seen as a worker */

#define SLOT(obj, off) (*(PyObject **)((char *)(obj) + (off)))

/* obj.slot = value; as Python does it: the old value is released after the store. */
static inline void
set_slot(PyObject *obj, Py_ssize_t off, PyObject *value)
{
    PyObject *old = SLOT(obj, off);
    Py_INCREF(value);
    SLOT(obj, off) = value;
    Py_XDECREF(old);
}

/* A slot read, as Python does it: an unset slot raises AttributeError. */
static inline PyObject *
get_slot(PyObject *obj, Py_ssize_t off, const char *name)
{
    PyObject *v = SLOT(obj, off);
    if (v == NULL)
        PyErr_Format(PyExc_AttributeError, "'%.100s' object has no attribute '%s'",
                     Py_TYPE(obj)->tp_name, name);
    return v;
}

static int
slot_offset(PyTypeObject *type, const char *name, Py_ssize_t *out)
{
    PyObject *descr = PyDict_GetItemString(type->tp_dict, name);
    if (!descr || !PyObject_TypeCheck(descr, &PyMemberDescr_Type)) {
        PyErr_Format(PyExc_TypeError, "coroutine._speedups: %s.%s is not a slot",
                     type->tp_name, name);
        return -1;
    }
    *out = ((PyMemberDescrObject *)descr)->d_member->offset;
    return 0;
}

/* -- exceptions: fetch/restore and the handled exception, across CPython 3.10-3.13 -------- */

static PyObject *
fetch_exc(void) /* the raised exception, normalized, with its traceback; clears it */
{
#if PY_VERSION_HEX >= 0x030C0000
    return PyErr_GetRaisedException();
#else
    PyObject *t, *v, *tb;
    PyErr_Fetch(&t, &v, &tb);
    PyErr_NormalizeException(&t, &v, &tb);
    if (tb != NULL) {
        PyException_SetTraceback(v, tb);
        Py_DECREF(tb);
    }
    Py_XDECREF(t);
    return v;
#endif
}

static void
restore_exc(PyObject *v) /* steals v */
{
#if PY_VERSION_HEX >= 0x030C0000
    PyErr_SetRaisedException(v);
#else
    PyObject *tb = PyException_GetTraceback(v);
    PyErr_Restore(Py_NewRef((PyObject *)Py_TYPE(v)), v, tb);
#endif
}

static PyObject *
get_handled(void) /* new reference or NULL */
{
#if PY_VERSION_HEX >= 0x030B0000
    return PyErr_GetHandledException();
#else
    PyObject *t, *v, *tb;
    PyErr_GetExcInfo(&t, &v, &tb);
    Py_XDECREF(t);
    Py_XDECREF(tb);
    return v;
#endif
}

static void
set_handled(PyObject *v) /* borrows v (may be NULL) */
{
#if PY_VERSION_HEX >= 0x030B0000
    PyErr_SetHandledException(v);
#else
    if (v == NULL || v == Py_None) {
        PyErr_SetExcInfo(NULL, NULL, NULL);
        return;
    }
    PyErr_SetExcInfo(Py_NewRef((PyObject *)Py_TYPE(v)), Py_NewRef(v),
                     PyException_GetTraceback(v));
#endif
}

/* Call fn(args...) "inside an except block" for the exception `exc`: as in Python, anything
 * fn raises chains to exc, and sys.exc_info() in fn is exc. Returns fn's result. */
static PyObject *
call_handling(PyObject *exc, PyObject *fn, PyObject *const *args, size_t nargs)
{
    PyObject *saved = get_handled();
    set_handled(exc);
    PyObject *r = PyObject_Vectorcall(fn, args, nargs, NULL);
    set_handled(saved);
    Py_XDECREF(saved);
    return r;
}

/* `except BaseException: recover(coro); raise` (rule D3). Always returns -1. */
static int
recover_and_raise(PyObject *coro)
{
    PyObject *exc = fetch_exc();
    PyObject *r = call_handling(exc, py_recover, &coro, 1);
    if (r == NULL) { /* recover raised: that propagates, chained to exc */
        Py_DECREF(exc);
        return -1;
    }
    Py_DECREF(r);
    restore_exc(exc);
    return -1;
}

/* -- greenlet helpers ---------------------------------------------------------------------- */

/* PyGreenlet_Check, with the subclass of the workers (and greenlet itself) answered first. */
static inline int
is_greenlet(PyObject *g)
{
    if (Py_TYPE(g) == worker_type || Py_TYPE(g) == &PyGreenlet_Type)
        return 1;
    if (!PyGreenlet_Check(g))
        return 0;
    worker_type = Py_TYPE(g);
    return 1;
}

/* Whether check(value) would pass because `value`'s class is exactly the declared `form`:
 * isinstance() of a direct instance of a class whose metaclass is `type` is True, so the
 * check is not called (it is for every other value). */
static inline int
exact_instance(PyObject *value, PyObject *form)
{
    return (PyObject *)Py_TYPE(value) == form && Py_IS_TYPE(form, &PyType_Type);
}

/* g.switch(value). The one-item argument tuple is recycled: after the switch comes back,
 * a tuple nobody else kept (greenlet hands the target its item, not the tuple) is emptied
 * and kept for the next switch, saving an allocation and a deallocation per switch. A
 * switch made while the spare is in use (one nested in another) allocates its own. */
static PyObject *spare_args;

static inline PyObject *
switch_to(PyObject *g, PyObject *value)
{
#if PY_VERSION_HEX >= 0x030E0000 /* 3.14 caches a tuple's hash: never recycle one */
    Py_CLEAR(spare_args);
#endif
    PyObject *args = spare_args;
    if (args != NULL)
        spare_args = NULL;
    else if ((args = PyTuple_New(1)) == NULL)
        return NULL;
    PyTuple_SET_ITEM(args, 0, Py_NewRef(value));
    PyObject *out = PyGreenlet_Switch((PyGreenlet *)g, args, NULL);
    if (Py_REFCNT(args) == 1 && spare_args == NULL) {
        PyObject *item = PyTuple_GET_ITEM(args, 0);
        PyTuple_SET_ITEM(args, 0, NULL);
        Py_DECREF(item);
        if (spare_args == NULL && Py_REFCNT(args) == 1) { /* (item's release ran no code that
                                                             took the spare or the tuple) */
            if (!PyObject_GC_IsTracked(args))
                PyObject_GC_Track(args);
            spare_args = args;
            return out;
        }
        PyTuple_SET_ITEM(args, 0, Py_NewRef(Py_None));
    }
    Py_DECREF(args);
    return out;
}

static inline int
same_thread(PyObject *ctx)
{
    PyObject *t = SLOT(ctx, c_thread);
    return t != NULL && PyLong_CheckExact(t)
           && PyLong_AsUnsignedLong(t) == PyThread_get_thread_ident();
}

/* -- the driver's side (_context.start, resume, ended; _worker.acquire, release) ----------- */

/* _worker.release(g): back to this thread's pool, or dropped. */
static int
release_worker(PyObject *g)
{
    if (PyObject_SetAttr(g, s_gr_context, Py_None) < 0)
        return -1;
    PyObject *poolable = PyObject_GetAttr(g, s_poolable);
    if (poolable == NULL)
        return -1;
    int ok = PyObject_IsTrue(poolable);
    Py_DECREF(poolable);
    if (ok <= 0)
        return ok;
    PyObject *pool = PyObject_GetAttr(worker_local, s_pool);
    if (pool == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_AttributeError))
            return -1;
        PyErr_Clear();
        pool = PyList_New(0);
        if (pool == NULL || PyObject_SetAttr(worker_local, s_pool, pool) < 0) {
            Py_XDECREF(pool);
            return -1;
        }
    }
    int r = 0;
    if (!PyList_CheckExact(pool))
        r = -1, PyErr_SetString(PyExc_TypeError, "coroutine: the worker pool is not a list");
    else if (PyList_GET_SIZE(pool) < pool_cap)
        r = PyList_Append(pool, g);
    Py_DECREF(pool);
    return r;
}

/* _worker.acquire(): a parked worker popped from the pool, else the Python function. */
static PyObject *
acquire_worker(void)
{
    PyObject *pool = PyObject_GetAttr(worker_local, s_pool);
    if (pool == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_AttributeError))
            return NULL;
        PyErr_Clear();
    }
    else if (PyList_CheckExact(pool) && PyList_GET_SIZE(pool) > 0) {
        Py_ssize_t n = PyList_GET_SIZE(pool);
        PyObject *g = Py_NewRef(PyList_GET_ITEM(pool, n - 1));
        if (PyList_SetSlice(pool, n - 1, n, NULL) < 0) {
            Py_DECREF(g);
            Py_DECREF(pool);
            return NULL;
        }
        Py_DECREF(pool);
        return g;
    }
    Py_XDECREF(pool);
    return PyObject_CallNoArgs(py_acquire);
}

/* _context.ended (rule E1): 0 (the body ended quietly), or -1 with what it raised. */
static int
ended(PyObject *coro, PyObject *ctx, PyObject *out)
{
    if (SLOT(ctx, c_state) != DONE) { /* the Python function raises the internal error */
        PyObject *args[2] = {coro, out};
        PyObject *r = PyObject_Vectorcall(py_ended, args, 2, NULL);
        if (r == NULL)
            return -1;
        int t = PyObject_IsTrue(r);
        Py_DECREF(r);
        return t;
    }
    PyObject *g = Py_XNewRef(SLOT(coro, k_g));
    if (out != ABANDONED) {
        set_slot(coro, k_g, Py_None);
        set_slot(ctx, c_driver, Py_None);
        if (out == PARKED && g != NULL && release_worker(g) < 0) {
            Py_DECREF(g);
            return -1;
        }
    }
    Py_XDECREF(g);
    PyObject *exc = SLOT(ctx, c_exc);
    if (exc != NULL && exc != Py_None) {
        Py_INCREF(exc);
        set_slot(ctx, c_exc, Py_None);
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
        Py_DECREF(exc);
        return -1;
    }
    return 0;
}

/* _context.resume: 1 (yielded again), 0 (ended), -1 (raised). `exc` and `driver` may be NULL. */
static int
resume_body(PyObject *coro, PyObject *value, PyObject *exc, PyObject *driver)
{
    PyObject *ctx = get_slot(coro, k_ctx, "_ctx");
    if (ctx == NULL)
        return -1;
    Py_INCREF(ctx);
    PyObject *g = SLOT(coro, k_g);
    if (g == NULL || !is_greenlet(g)) { /* not reached by the protocol: the reference */
        PyObject *args[4] = {coro, value, exc ? exc : Py_None, driver ? driver : Py_None};
        PyObject *r = PyObject_Vectorcall(py_resume, args, 4, NULL);
        Py_DECREF(ctx);
        if (r == NULL)
            return -1;
        int t = PyObject_IsTrue(r);
        Py_DECREF(r);
        return t;
    }
    Py_INCREF(g);
    if (driver == NULL) {
        driver = (PyObject *)PyGreenlet_GetCurrent();
        if (driver == NULL)
            goto fail_early;
    }
    else
        Py_INCREF(driver);
    if (driver != SLOT(ctx, c_driver)) { /* D1 (thread) then D2, in Python */
        PyObject *args[3] = {coro, g, driver};
        PyObject *r = PyObject_Vectorcall(py_adopt, args, 3, NULL);
        if (r == NULL) {
            Py_DECREF(driver);
            goto fail_early;
        }
        Py_DECREF(r);
    }
    Py_DECREF(driver);
    Py_INCREF(value);
    if (exc != NULL) {
        set_slot(ctx, c_exc, exc);
        Py_SETREF(value, Py_NewRef(THROWN));
    }
    set_slot(ctx, c_state, RUNNING); /* D3: last */
    PyObject *out = switch_to(g, value);
    Py_DECREF(value);
    if (out == NULL) {
        recover_and_raise(coro);
        Py_DECREF(g);
        Py_DECREF(ctx);
        return -1;
    }
    Py_DECREF(g);
    int r = 1;
    if (SLOT(ctx, c_state) != SUSPENDED)
        r = ended(coro, ctx, out);
    Py_DECREF(out);
    Py_DECREF(ctx);
    return r;
fail_early:
    Py_DECREF(g);
    Py_DECREF(ctx);
    return -1;
}

/* _context.start, for the created coroutine `coro` (its task: (ctx, _body, _with_return)). */
static int
start_body(PyObject *coro, PyObject *ctx)
{
    PyObject *body = get_slot(coro, k_body, "_body");
    PyObject *with_return = body ? get_slot(coro, k_with_return, "_with_return") : NULL;
    if (with_return == NULL)
        return -1;
    PyObject *task = PyTuple_Pack(3, ctx, body, with_return);
    if (task == NULL)
        return -1;
    PyObject *g = acquire_worker();
    if (g == NULL) {
        Py_DECREF(task);
        return -1;
    }
    Py_INCREF(ctx);
    PyObject *driver = (PyObject *)PyGreenlet_GetCurrent();
    PyObject *out = NULL;
    if (driver == NULL || !is_greenlet(g))
        goto failed;
    if (PyGreenlet_SetParent((PyGreenlet *)g, (PyGreenlet *)driver) < 0)
        goto failed;
    PyObject *vars = get_slot(ctx, c_vars, "_vars");
    if (vars == NULL || PyObject_SetAttr(g, s_gr_context, vars) < 0)
        goto failed;
    set_slot(coro, k_g, g);
    PyObject *gid = PyLong_FromVoidPtr(g);
    if (gid == NULL)
        goto failed;
    set_slot(ctx, c_gid, gid);
    Py_DECREF(gid);
    set_slot(ctx, c_driver, driver);
    set_slot(ctx, c_state, RUNNING);
    out = switch_to(g, task);
    if (out == NULL)
        goto failed;
    Py_DECREF(task);
    Py_DECREF(g);
    Py_DECREF(driver);
    int r = 1;
    if (SLOT(ctx, c_state) != SUSPENDED)
        r = ended(coro, ctx, out);
    Py_DECREF(out);
    Py_DECREF(ctx);
    return r;
failed:
    if (driver == NULL || PyErr_Occurred() == NULL) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_TypeError, "coroutine: the worker is not a greenlet");
    }
    recover_and_raise(coro);
    Py_DECREF(task);
    Py_DECREF(g);
    Py_XDECREF(driver);
    Py_DECREF(ctx);
    return -1;
}

/* -- Coroutine's driving methods ----------------------------------------------------------- */

static inline int
is_plain_suspended(PyObject *ctx)
{
    return SLOT(ctx, c_state) == SUSPENDED && SLOT(ctx, c_stopping) == Py_False;
}

/* A created coroutine that `Next` may start here: as `_advance` would, minus its checks. */
static inline int
is_plain_created(PyObject *ctx)
{
    return SLOT(ctx, c_state) == CREATED && SLOT(ctx, c_stopping) == Py_False
           && SLOT(ctx, c_durable) == Py_None && same_thread(ctx);
}

static int
advance(PyObject *self, PyObject *op, PyObject *value) /* self._advance(op, value) */
{
    PyObject *args[3] = {self, op, value};
    PyObject *r = PyObject_VectorcallMethod(s_advance, args, 3 | PY_VECTORCALL_ARGUMENTS_OFFSET,
                                            NULL);
    if (r == NULL)
        return -1;
    int t = PyObject_IsTrue(r);
    Py_DECREF(r);
    return t;
}

static int
next_op(PyObject *self, PyObject *op) /* Next's body: 1, 0, -1 */
{
    PyObject *ctx = get_slot(self, k_ctx, "_ctx");
    if (ctx == NULL)
        return -1;
    if (is_plain_suspended(ctx)) {
        PyObject *sent = Py_NewRef(SLOT(ctx, c_sent));
        int r = resume_body(self, sent, NULL, NULL);
        Py_DECREF(sent);
        return r;
    }
    if (is_plain_created(ctx))
        return start_body(self, ctx);
    return advance(self, op, NOTHING);
}

static PyObject *
Coro_Next(PyObject *self, PyObject *unused)
{
    int r = next_op(self, s_Next);
    return r < 0 ? NULL : PyBool_FromLong(r);
}

static PyObject *
Coro_Recv(PyObject *self, PyObject *unused)
{
    PyObject *ctx = get_slot(self, k_ctx, "_ctx");
    return ctx == NULL ? NULL : Py_NewRef(SLOT(ctx, c_recv));
}

static int
check_send(PyObject *ctx, PyObject *value) /* Send's type check: 0 ok, -1 raised */
{
    PyObject *sig = SLOT(ctx, c_sig);
    PyObject *check = SLOT(sig, g_check_s);
    if (check == Py_None || exact_instance(value, SLOT(sig, g_s)))
        return 0;
    PyObject *r = PyObject_CallOneArg(check, value);
    if (r == NULL)
        return -1;
    int ok = PyObject_IsTrue(r);
    Py_DECREF(r);
    if (ok != 0)
        return ok < 0 ? -1 : 0;
    PyObject *args[2] = {value, sig};
    PyObject *err = PyObject_Vectorcall(py_bad_send, args, 2, NULL);
    if (err != NULL) {
        PyErr_SetObject((PyObject *)Py_TYPE(err), err);
        Py_DECREF(err);
    }
    return -1;
}

static PyObject *
Coro_Send(PyObject *self, PyObject *value)
{
    PyObject *ctx = get_slot(self, k_ctx, "_ctx");
    if (ctx == NULL || check_send(ctx, value) < 0)
        return NULL;
    set_slot(ctx, c_sent, value);
    Py_RETURN_NONE;
}

static PyObject *
stop_iteration(PyObject *ctx) /* raise StopIteration(ctx._result) */
{
    PyObject *e = PyObject_CallOneArg(PyExc_StopIteration, SLOT(ctx, c_result));
    if (e != NULL) {
        PyErr_SetObject(PyExc_StopIteration, e);
        Py_DECREF(e);
    }
    return NULL;
}

/* What `__next__` and `send` return after driving: the value yielded (r > 0), or StopIteration
 * with `Result()` (r == 0), or NULL with the error set (r < 0). Takes a reference to `ctx`. */
static PyObject *
recv_or_stop(PyObject *ctx, int r)
{
    PyObject *out = NULL;
    if (r > 0)
        out = Py_NewRef(SLOT(ctx, c_recv));
    else if (r == 0)
        stop_iteration(ctx);
    Py_DECREF(ctx);
    return out;
}

static PyObject *
Coro_next(PyObject *self, PyObject *unused) /* __next__ */
{
    PyObject *ctx = get_slot(self, k_ctx, "_ctx");
    if (ctx == NULL)
        return NULL;
    Py_INCREF(ctx);
    int r = next_op(self, s_next);
    return recv_or_stop(ctx, r);
}

static PyObject *
Coro_send(PyObject *self, PyObject *value)
{
    PyObject *ctx = get_slot(self, k_ctx, "_ctx");
    if (ctx == NULL)
        return NULL;
    if (SLOT(ctx, c_state) == CREATED && value == Py_None)
        return Coro_next(self, NULL);
    if (check_send(ctx, value) < 0)
        return NULL;
    Py_INCREF(ctx);
    int r;
    if (is_plain_suspended(ctx))
        r = resume_body(self, value, NULL, NULL);
    else
        r = advance(self, s_send, value);
    return recv_or_stop(ctx, r);
}

/* __del__: the common case (created or done: nothing to unwind) without a Python frame; the
 * Python `__del__` for a body to unwind. */
static PyObject *
Coro_del(PyObject *self, PyObject *unused)
{
    PyObject *g = SLOT(self, k_g);
    if (g == NULL || g == Py_None)
        Py_RETURN_NONE;
    return PyObject_CallOneArg(py_del, self);
}

static PyMethodDef coro_methods[] = {
    {"__del__", Coro_del, METH_NOARGS, NULL},
    {"Next", Coro_Next, METH_NOARGS, NULL},
    {"Recv", Coro_Recv, METH_NOARGS, NULL},
    {"Send", Coro_Send, METH_O, NULL},
    {"__next__", Coro_next, METH_NOARGS, NULL},
    {"send", Coro_send, METH_O, NULL},
    {NULL, NULL, 0, NULL},
};

/* -- module functions: resume, Run's loop, creation ---------------------------------------- */

static int
check_ready(void)
{
    if (!ready)
        PyErr_SetString(PyExc_RuntimeError, "coroutine._speedups used before setup()");
    return ready;
}

static PyObject *
mod_resume(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "resume(coro, value, exc, driver)");
        return NULL;
    }
    if (!check_ready())
        return NULL;
    int r = resume_body(args[0], args[1], args[2] == Py_None ? NULL : args[2],
                        args[3] == Py_None ? NULL : args[3]);
    return r < 0 ? NULL : PyBool_FromLong(r);
}

/* Run(coro, fn): _run.Run's loop, statement for statement. */
static PyObject *
mod_run(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "run(coro, fn)");
        return NULL;
    }
    if (!check_ready())
        return NULL;
    PyObject *coro = args[0], *fn = args[1];
    if (!PyObject_TypeCheck(coro, CoroType)) { /* as the Python Run: it reads coro._ctx */
        PyErr_Format(PyExc_AttributeError, "'%.100s' object has no attribute '_ctx'",
                     Py_TYPE(coro)->tp_name);
        return NULL;
    }
    PyObject *ctx = get_slot(coro, k_ctx, "_ctx");
    if (ctx == NULL)
        return NULL;
    Py_INCREF(ctx);
    PyObject *driver = NULL, *check = NULL, *form = NULL, *result = NULL;
    int going = next_op(coro, s_Next);
    if (going <= 0)
        goto done;
    check = Py_NewRef(SLOT(SLOT(ctx, c_sig), g_check_s));
    form = Py_NewRef(SLOT(SLOT(ctx, c_sig), g_s));
    driver = (PyObject *)PyGreenlet_GetCurrent();
    if (driver == NULL) {
        going = -1;
        goto done;
    }
    for (;;) {
        PyObject *sent = PyObject_CallOneArg(fn, SLOT(ctx, c_recv));
        if (sent != NULL && check != Py_None && !exact_instance(sent, form)) {
            PyObject *ok = PyObject_CallOneArg(check, sent);
            int t = ok == NULL ? -1 : PyObject_IsTrue(ok);
            Py_XDECREF(ok);
            if (t == 0) {
                PyObject *a[2] = {sent, SLOT(ctx, c_sig)};
                PyObject *err = PyObject_Vectorcall(py_bad_send, a, 2, NULL);
                if (err != NULL) {
                    PyErr_SetObject((PyObject *)Py_TYPE(err), err);
                    Py_DECREF(err);
                }
            }
            if (t != 1)
                Py_CLEAR(sent);
        }
        if (sent == NULL) { /* fn (or the check) raised */
            PyObject *exc = fetch_exc();
            if (PyErr_GivenExceptionMatches(exc, PyExc_Exception)) {
                if (SLOT(ctx, c_state) != SUSPENDED) { /* fn drove the coroutine itself */
                    restore_exc(exc);
                    going = -1;
                    goto done;
                }
                PyObject *saved = get_handled();
                set_handled(exc);
                going = resume_body(coro, NOTHING, exc, NULL);
                set_handled(saved);
                Py_XDECREF(saved);
                Py_DECREF(exc);
            }
            else { /* KeyboardInterrupt and the like: unwind the body, then raise */
                PyObject *saved = get_handled();
                set_handled(exc);
                PyObject *r = PyObject_CallMethodNoArgs(coro, s_close);
                set_handled(saved);
                Py_XDECREF(saved);
                if (r == NULL)
                    Py_DECREF(exc);
                else {
                    Py_DECREF(r);
                    restore_exc(exc);
                }
                going = -1;
                goto done;
            }
        }
        else {
            if (is_plain_suspended(ctx))
                going = resume_body(coro, sent, NULL, driver);
            else if (SLOT(ctx, c_state) == SUSPENDED)
                going = advance(coro, s_Next, sent);
            else
                going = 0;
            Py_DECREF(sent);
        }
        if (going <= 0)
            break;
    }
done:
    if (going == 0)
        result = Py_NewRef(SLOT(ctx, c_result));
    Py_XDECREF(check);
    Py_XDECREF(form);
    Py_XDECREF(driver);
    Py_DECREF(ctx);
    return result;
}

/* _coroutine._create(sig, with_return, fn, /, *, durable=None, version=None) */
static PyObject *
mod_create(PyObject *mod, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (!ready || nargs != 3)
        goto slow;
    if (kwnames != NULL) {
        Py_ssize_t nk = PyTuple_GET_SIZE(kwnames);
        for (Py_ssize_t i = 0; i < nk; i++)
            if (args[nargs + i] != Py_None)
                goto slow;
    }
    PyObject *flag = PyObject_GetAttr(durable_module, s_DURABLE);
    if (flag == NULL)
        return NULL;
    int durable = PyObject_IsTrue(flag);
    Py_DECREF(flag);
    if (durable != 0)
        goto slow; /* (or raised: the Python function says it again) */
    PyObject *sig = args[0], *with_return = args[1], *fn = args[2];
    int plain = 0;
    if (PyFunction_Check(fn)) {
        PyCodeObject *code = (PyCodeObject *)PyFunction_GET_CODE(fn);
        PyObject *defaults = PyFunction_GET_DEFAULTS(fn);
        PyObject *kwdefaults = PyFunction_GET_KW_DEFAULTS(fn);
        Py_ssize_t needs = code->co_argcount - (defaults ? PyTuple_GET_SIZE(defaults) : 0);
        needs += code->co_kwonlyargcount - (kwdefaults ? PyDict_GET_SIZE(kwdefaults) : 0);
        plain = needs <= 0;
    }
    if (!plain) {
        PyObject *a[2] = {fn, with_return};
        PyObject *r = PyObject_Vectorcall(py_check_entry, a, 2, NULL);
        if (r == NULL)
            return NULL;
        Py_DECREF(r);
    }
    PyObject *coro = PyBaseObject_Type.tp_new(CoroType, empty_tuple, NULL);
    if (coro == NULL)
        return NULL;
    set_slot(coro, k_g, Py_None); /* first: __del__ reads it */
    set_slot(coro, k_fn, fn);
    set_slot(coro, k_body, fn);
    set_slot(coro, k_with_return, with_return);
    PyObject *ctx = PyBaseObject_Type.tp_new(CtxType, empty_tuple, NULL);
    if (ctx == NULL)
        goto fail;
    set_slot(coro, k_ctx, ctx);
    set_slot(ctx, c_sig, sig);
    set_slot(ctx, c_state, CREATED);
    set_slot(ctx, c_sent, NOTHING);
    set_slot(ctx, c_recv, Py_None);
    set_slot(ctx, c_result, Py_None);
    set_slot(ctx, c_exc, Py_None);
    set_slot(ctx, c_exit, Py_None);
    set_slot(ctx, c_driver, Py_None);
    set_slot(ctx, c_durable, Py_None);
    set_slot(ctx, c_stopping, Py_False);
    PyObject *v = PyLong_FromUnsignedLong(PyThread_get_thread_ident());
    if (v == NULL)
        goto fail;
    SLOT(ctx, c_thread) = v;
    v = PyLong_FromLong(0);
    SLOT(ctx, c_gid) = v;
    v = PyContext_CopyCurrent();
    if (v == NULL)
        goto fail;
    SLOT(ctx, c_vars) = v;
    v = PyWeakref_NewRef(coro, NULL);
    if (v == NULL)
        goto fail;
    SLOT(ctx, c_coro) = v;
    Py_DECREF(ctx);
    return coro;
fail:
    Py_XDECREF(ctx);
    Py_DECREF(coro);
    return NULL;
slow:
    return PyObject_Vectorcall(py_create, args, nargsf, kwnames);
}

/* -- the yield site: Yield[R, S] as the compiled form of _yield._make_yield's function ----- */

/* CURRENT.get(), with a one-entry cache in front of it. `run_body` is the only code that
 * sets CURRENT, once, first thing in a body's fresh contextvars context (a test checks it):
 * so while the thread's current contextvars context is the one in which CURRENT was last
 * read as `ctx`, CURRENT.get() is still `ctx`, and the lookup (a HAMT search, about 180
 * instructions: greenlet invalidates the ContextVar's own cache on every switch) is skipped.
 * Weak references: the cache keeps neither the context nor the Context alive. */
static PyObject *cache_vars, *cache_ctx; /* weakrefs, or NULL */

static inline PyObject *
weak_target(PyObject *ref) /* borrowed; Py_None if dead (PyWeakref_GET_OBJECT, not deprecated) */
{
    PyObject *obj = ((PyWeakReference *)ref)->wr_object;
    return Py_REFCNT(obj) > 0 ? obj : Py_None;
}

static PyObject *
current_ctx(void) /* a new reference to CURRENT's value (None outside a body), or NULL */
{
    PyObject *vars = PyThreadState_Get()->context;
    if (vars != NULL && cache_vars != NULL && weak_target(cache_vars) == vars) {
        PyObject *ctx = weak_target(cache_ctx);
        if (ctx != Py_None)
            return Py_NewRef(ctx);
    }
    PyObject *ctx = NULL;
    if (PyContextVar_Get(CURRENT, NULL, &ctx) < 0)
        return NULL;
    if (ctx == NULL)
        return Py_NewRef(Py_None);
    if (vars != NULL && Py_TYPE(ctx) == CtxType) {
        PyObject *wv = PyWeakref_NewRef(vars, NULL);
        PyObject *wc = wv ? PyWeakref_NewRef(ctx, NULL) : NULL;
        if (wc == NULL) {
            Py_XDECREF(wv);
            Py_DECREF(ctx);
            return NULL;
        }
        Py_XSETREF(cache_vars, wv);
        Py_XSETREF(cache_ctx, wc);
    }
    return ctx;
}

typedef struct {
    PyObject_HEAD
    PyObject *site;      /* the site's Signature */
    PyObject *rule;      /* site.self_rule */
    PyObject *check;     /* site.self_rule.check, or None */
    PyObject *form;      /* site.r */
    PyObject *slow;      /* the Python yield function for this site: every other case */
    PyObject *name;      /* its __qualname__ */
    vectorcallfunc vectorcall;
} YieldSite;

static PyObject *
YieldSite_call(YieldSite *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    if (PyVectorcall_NARGS(nargsf) != 1 || kwnames != NULL)
        return PyObject_Vectorcall(self->slow, args, nargsf, kwnames); /* its TypeError */
    PyObject *value = args[0], *ctx = current_ctx();
    if (ctx == NULL)
        return NULL;
    if (ctx == Py_None || Py_TYPE(ctx) != CtxType
        || SLOT(ctx, c_sig) != self->site)
        goto slow;
    if (self->check != Py_None && !exact_instance(value, self->form)) {
        PyObject *r = PyObject_CallOneArg(self->check, value);
        if (r == NULL) {
            Py_DECREF(ctx);
            return NULL;
        }
        int ok = PyObject_IsTrue(r);
        Py_DECREF(r);
        if (ok < 0) {
            Py_DECREF(ctx);
            return NULL;
        }
        if (!ok)
            goto slow; /* the Python function builds the error, with the user's site */
    }
    if (SLOT(ctx, c_stopping) != Py_False || SLOT(ctx, c_durable) != Py_None)
        goto slow;
    /* -- switch_out(ctx, value, rule): B1 then B2 -- */
    PyGreenlet *current = PyGreenlet_GetCurrent();
    if (current == NULL) {
        Py_DECREF(ctx);
        return NULL;
    }
    PyObject *gid = SLOT(ctx, c_gid);
    int mine = PyLong_CheckExact(gid) && PyLong_AsVoidPtr(gid) == (void *)current;
    Py_DECREF(current);
    if (!mine || SLOT(ctx, c_state) != RUNNING)
        goto slow; /* B1: the Python function refuses, having written nothing */
    PyObject *driver = SLOT(ctx, c_driver);
    if (driver == NULL || !is_greenlet(driver))
        goto slow;
    Py_INCREF(driver);
    PyObject *recv = Py_NewRef(SLOT(ctx, c_recv));
    set_slot(ctx, c_recv, value);
    set_slot(ctx, c_sent, NOTHING);
    set_slot(ctx, c_state, SUSPENDED); /* B2: last */
    PyObject *sent = switch_to(driver, value);
    Py_DECREF(driver);
    if (sent == NULL) {
        if (PyErr_ExceptionMatches(PyExc_GreenletExit)) { /* raise killed(ctx) from None */
            PyObject *exit = fetch_exc();
            PyObject *err = call_handling(exit, py_killed, &ctx, 1);
            if (err != NULL) {
                PyException_SetContext(err, exit); /* steals exit */
                PyException_SetCause(err, NULL);   /* from None */
                restore_exc(err);
            }
            else
                Py_DECREF(exit);
        }
        else if (SLOT(ctx, c_state) == SUSPENDED) { /* raised before the switch: never left */
            set_slot(ctx, c_state, RUNNING);
            set_slot(ctx, c_recv, recv);
        }
        Py_DECREF(recv);
        Py_DECREF(ctx);
        return NULL;
    }
    Py_DECREF(recv);
    if (Py_TYPE(sent) == SignalType) {
        PyObject *exc = SLOT(ctx, c_exc);
        /* A stop's CoroutineExit is raised by the Python `signalled`: its frame records the
         * exit's traceback even on 3.11, where an exception raised from C and swallowed by C
         * code (sqlite3) never gets one, and `_swallowed_exit` reads it. */
        if (sent == THROWN && exc != NULL && PyExceptionInstance_Check(exc)
            && exc != SLOT(ctx, c_exit)) {
            Py_INCREF(exc); /* raise it here, chained to what the body handles */
            set_slot(ctx, c_exc, Py_None);
            PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
            Py_DECREF(exc);
            Py_DECREF(sent);
            Py_DECREF(ctx);
            return NULL;
        }
        PyObject *a[3] = {ctx, sent, self->rule};
        PyObject *r = PyObject_Vectorcall(py_signalled, a, 3, NULL);
        Py_DECREF(sent);
        Py_DECREF(ctx);
        return r;
    }
    Py_DECREF(ctx);
    return sent;
slow:
    Py_XDECREF(ctx);
    return PyObject_Vectorcall(self->slow, args, nargsf, kwnames);
}

static int
YieldSite_traverse(YieldSite *self, visitproc visit, void *arg)
{
    Py_VISIT(self->site);
    Py_VISIT(self->rule);
    Py_VISIT(self->check);
    Py_VISIT(self->form);
    Py_VISIT(self->slow);
    Py_VISIT(self->name);
    return 0;
}

static int
YieldSite_clear(YieldSite *self)
{
    Py_CLEAR(self->site);
    Py_CLEAR(self->rule);
    Py_CLEAR(self->check);
    Py_CLEAR(self->form);
    Py_CLEAR(self->slow);
    Py_CLEAR(self->name);
    return 0;
}

static void
YieldSite_dealloc(YieldSite *self)
{
    PyObject_GC_UnTrack(self);
    YieldSite_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
YieldSite_repr(YieldSite *self)
{
    return PyUnicode_FromFormat("<compiled function %U>", self->name);
}

static PyObject *
YieldSite_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    PyObject *site, *form, *rule, *slow, *name;
    if (!PyArg_ParseTuple(args, "OOO!OU:YieldSite", &site, &form, &PyTuple_Type, &rule, &slow,
                          &name))
        return NULL;
    if (PyTuple_GET_SIZE(rule) < 1) {
        PyErr_SetString(PyExc_TypeError, "YieldSite: rule must be a Rule");
        return NULL;
    }
    YieldSite *self = (YieldSite *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->site = Py_NewRef(site);
    self->rule = Py_NewRef(rule);
    self->check = Py_NewRef(PyTuple_GET_ITEM(rule, 0));
    self->form = Py_NewRef(form);
    self->slow = Py_NewRef(slow);
    self->name = Py_NewRef(name);
    self->vectorcall = (vectorcallfunc)YieldSite_call;
    return (PyObject *)self;
}

static PyMemberDef YieldSite_members[] = {
    {"__qualname__", T_OBJECT, offsetof(YieldSite, name), READONLY, NULL},
    {"__name__", T_OBJECT, offsetof(YieldSite, name), READONLY, NULL},
    {"__wrapped__", T_OBJECT, offsetof(YieldSite, slow), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject YieldSiteType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "coroutine._speedups.YieldSite",
    .tp_basicsize = sizeof(YieldSite),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_VECTORCALL | Py_TPFLAGS_HAVE_GC,
    .tp_vectorcall_offset = offsetof(YieldSite, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_new = YieldSite_new,
    .tp_dealloc = (destructor)YieldSite_dealloc,
    .tp_traverse = (traverseproc)YieldSite_traverse,
    .tp_clear = (inquiry)YieldSite_clear,
    .tp_repr = (reprfunc)YieldSite_repr,
    .tp_members = YieldSite_members,
    .tp_doc = "The compiled yield function of one `Yield[R, S]` site (see _yield._make_yield).",
};

/* -- the Yield table: a dict whose subscription first tries an identity cache -------------- */

#define TABLE_CACHE 8

typedef struct {
    PyDictObject dict;
    PyObject *keys[TABLE_CACHE][2]; /* (R, S) by identity */
    PyObject *fns[TABLE_CACHE];
    int next;
} YieldTable;

static PyObject *
YieldTable_subscript(YieldTable *self, PyObject *item)
{
    if (PyTuple_CheckExact(item) && PyTuple_GET_SIZE(item) == 2) {
        PyObject *r = PyTuple_GET_ITEM(item, 0), *s = PyTuple_GET_ITEM(item, 1);
        for (int i = 0; i < TABLE_CACHE; i++)
            if (self->keys[i][0] == r && self->keys[i][1] == s && self->fns[i] != NULL)
                return Py_NewRef(self->fns[i]);
    }
    PyObject *fn = PyDict_Type.tp_as_mapping->mp_subscript((PyObject *)self, item);
    if (fn != NULL && PyTuple_CheckExact(item) && PyTuple_GET_SIZE(item) == 2) {
        int i = self->next;
        self->next = (i + 1) % TABLE_CACHE;
        Py_XSETREF(self->keys[i][0], Py_NewRef(PyTuple_GET_ITEM(item, 0)));
        Py_XSETREF(self->keys[i][1], Py_NewRef(PyTuple_GET_ITEM(item, 1)));
        Py_XSETREF(self->fns[i], Py_NewRef(fn));
    }
    return fn;
}

static int
YieldTable_traverse(YieldTable *self, visitproc visit, void *arg)
{
    for (int i = 0; i < TABLE_CACHE; i++) {
        Py_VISIT(self->keys[i][0]);
        Py_VISIT(self->keys[i][1]);
        Py_VISIT(self->fns[i]);
    }
    return PyDict_Type.tp_traverse((PyObject *)self, visit, arg);
}

static int
YieldTable_clear(YieldTable *self)
{
    for (int i = 0; i < TABLE_CACHE; i++) {
        Py_CLEAR(self->keys[i][0]);
        Py_CLEAR(self->keys[i][1]);
        Py_CLEAR(self->fns[i]);
    }
    return PyDict_Type.tp_clear((PyObject *)self);
}

static PyObject *
YieldTable_forget(YieldTable *self, PyObject *unused) /* empty the identity cache */
{
    for (int i = 0; i < TABLE_CACHE; i++) {
        Py_CLEAR(self->keys[i][0]);
        Py_CLEAR(self->keys[i][1]);
        Py_CLEAR(self->fns[i]);
    }
    Py_RETURN_NONE;
}

static void
YieldTable_dealloc(YieldTable *self)
{
    PyObject_GC_UnTrack(self);
    YieldTable_forget(self, NULL);
    PyDict_Type.tp_dealloc((PyObject *)self);
}

static PyMappingMethods YieldTable_mapping = {
    .mp_subscript = (binaryfunc)YieldTable_subscript,
};

static PyMethodDef YieldTable_methods[] = {
    {"_forget", (PyCFunction)YieldTable_forget, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject YieldTableType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "coroutine._speedups.YieldTable",
    .tp_basicsize = sizeof(YieldTable),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_as_mapping = &YieldTable_mapping,
    .tp_traverse = (traverseproc)YieldTable_traverse,
    .tp_clear = (inquiry)YieldTable_clear,
    .tp_dealloc = (destructor)YieldTable_dealloc,
    .tp_methods = YieldTable_methods,
    .tp_doc = "A dict with an identity cache in front of its subscription (`Yield`).",
};

/* -- setup ---------------------------------------------------------------------------------- */

static int
take(PyObject *ns, const char *name, PyObject **out)
{
    PyObject *v = PyDict_GetItemString(ns, name);
    if (v == NULL) {
        PyErr_Format(PyExc_KeyError, "coroutine._speedups.setup: %s missing", name);
        return -1;
    }
    Py_XSETREF(*out, Py_NewRef(v));
    return 0;
}

static PyObject *
mod_setup(PyObject *mod, PyObject *ns)
{
    if (!PyDict_Check(ns)) {
        PyErr_SetString(PyExc_TypeError, "setup(namespace: dict)");
        return NULL;
    }
    PyObject *coro_t = NULL, *ctx_t = NULL, *sig_t = NULL, *signal_t = NULL, *cap = NULL;
    if (take(ns, "CREATED", &CREATED) || take(ns, "SUSPENDED", &SUSPENDED)
        || take(ns, "RUNNING", &RUNNING) || take(ns, "DONE", &DONE)
        || take(ns, "NOTHING", &NOTHING) || take(ns, "THROWN", &THROWN)
        || take(ns, "ABANDONED", &ABANDONED) || take(ns, "PARKED", &PARKED)
        || take(ns, "CURRENT", &CURRENT) || take(ns, "recover", &py_recover)
        || take(ns, "ended", &py_ended) || take(ns, "adopt", &py_adopt)
        || take(ns, "signalled", &py_signalled) || take(ns, "killed", &py_killed)
        || take(ns, "del", &py_del) || take(ns, "create", &py_create) || take(ns, "check_entry", &py_check_entry)
        || take(ns, "acquire", &py_acquire) || take(ns, "bad_send", &py_bad_send)
        || take(ns, "resume", &py_resume) || take(ns, "durable", &durable_module)
        || take(ns, "local", &worker_local) || take(ns, "Coroutine", &coro_t)
        || take(ns, "Context", &ctx_t) || take(ns, "Signature", &sig_t)
        || take(ns, "Signal", &signal_t) || take(ns, "POOL_CAP", &cap))
        goto fail;
    if (!PyType_Check(coro_t) || !PyType_Check(ctx_t) || !PyType_Check(sig_t)
        || !PyType_Check(signal_t) || !PyContextVar_CheckExact(CURRENT)) {
        PyErr_SetString(PyExc_TypeError, "coroutine._speedups.setup: bad namespace");
        goto fail;
    }
    pool_cap = PyLong_AsSsize_t(cap);
    if (pool_cap == -1 && PyErr_Occurred())
        goto fail;
    CoroType = (PyTypeObject *)coro_t;
    CtxType = (PyTypeObject *)ctx_t;
    SignalType = (PyTypeObject *)signal_t;
    PyTypeObject *st = (PyTypeObject *)sig_t;
    if (slot_offset(CtxType, "_state", &c_state) || slot_offset(CtxType, "_sig", &c_sig)
        || slot_offset(CtxType, "_stopping", &c_stopping)
        || slot_offset(CtxType, "_durable", &c_durable)
        || slot_offset(CtxType, "_sent", &c_sent) || slot_offset(CtxType, "_driver", &c_driver)
        || slot_offset(CtxType, "_recv", &c_recv) || slot_offset(CtxType, "_exc", &c_exc)
        || slot_offset(CtxType, "_gid", &c_gid) || slot_offset(CtxType, "_vars", &c_vars)
        || slot_offset(CtxType, "_result", &c_result)
        || slot_offset(CtxType, "_thread", &c_thread) || slot_offset(CtxType, "_coro", &c_coro)
        || slot_offset(CtxType, "_exit", &c_exit) || slot_offset(CoroType, "_ctx", &k_ctx)
        || slot_offset(CoroType, "_g", &k_g) || slot_offset(CoroType, "_fn", &k_fn)
        || slot_offset(CoroType, "_body", &k_body)
        || slot_offset(CoroType, "_with_return", &k_with_return)
        || slot_offset(st, "check_s", &g_check_s) || slot_offset(st, "s", &g_s))
        goto fail;
    /* The methods, as method descriptors of Coroutine (they bind like Python methods). */
    for (PyMethodDef *m = coro_methods; m->ml_name != NULL; m++) {
        PyObject *descr = PyDescr_NewMethod(CoroType, m);
        if (descr == NULL)
            goto fail;
        int r = PyObject_SetAttrString(coro_t, m->ml_name, descr);
        Py_DECREF(descr);
        if (r < 0)
            goto fail;
    }
    /* The types stay alive: the module keeps a reference to each (never released). */
    ready = 1;
    Py_RETURN_NONE;
fail:
    Py_XDECREF(coro_t), Py_XDECREF(ctx_t), Py_XDECREF(sig_t), Py_XDECREF(signal_t);
    Py_XDECREF(cap);
    return NULL;
}

static PyMethodDef module_methods[] = {
    {"setup", mod_setup, METH_O, "Bind to the Python runtime's objects; install the methods."},
    {"resume", (PyCFunction)(void (*)(void))mod_resume, METH_FASTCALL,
     "_context.resume, compiled."},
    {"run", (PyCFunction)(void (*)(void))mod_run, METH_FASTCALL, "_run.Run's loop, compiled."},
    {"create", (PyCFunction)(void (*)(void))mod_create, METH_FASTCALL | METH_KEYWORDS,
     "_coroutine._create, compiled."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT, "coroutine._speedups",
    "The switch protocol's hot paths, compiled (see the comment at the top of _speedups.c).",
    -1, module_methods,
};

#define INTERN(var, text)                                    \
    do {                                                     \
        if ((var = PyUnicode_InternFromString(text)) == NULL) \
            return NULL;                                     \
    } while (0)

PyMODINIT_FUNC
PyInit__speedups(void)
{
    PyGreenlet_Import();
    if (_PyGreenlet_API == NULL)
        return NULL;
    YieldTableType.tp_base = &PyDict_Type;
    if (PyType_Ready(&YieldSiteType) < 0 || PyType_Ready(&YieldTableType) < 0)
        return NULL;
    INTERN(s_advance, "_advance");
    INTERN(s_close, "close");
    INTERN(s_pool, "pool");
    INTERN(s_poolable, "poolable");
    INTERN(s_gr_context, "gr_context");
    INTERN(s_DURABLE, "DURABLE");
    INTERN(s_Next, "Next");
    INTERN(s_next, "next");
    INTERN(s_send, "send");
    if ((empty_tuple = PyTuple_New(0)) == NULL)
        return NULL;
    PyObject *m = PyModule_Create(&moduledef);
    if (m == NULL)
        return NULL;
    if (PyModule_AddObjectRef(m, "YieldSite", (PyObject *)&YieldSiteType) < 0
        || PyModule_AddObjectRef(m, "YieldTable", (PyObject *)&YieldTableType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
