/* The driver's side of the switch protocol: _context.start, resume and ended (rule E1), and
 * _worker.acquire and release (a per-thread pool of parked worker greenlets). */

#include "speedups.h"

/* This thread's dictionary of `_worker._local` (the threading.local whose `pool` is the
 * thread's pool), borrowed, or NULL with an error. Looked up through the local once per
 * thread, then kept in the thread state's dictionary, which dies with the thread as the
 * local's dictionary does: two dict lookups instead of the local's attribute protocol. */
static PyObject *
local_dict(void)
{
    PyObject *tdict = PyThreadState_GetDict();
    if (tdict == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "coroutine: no thread state dictionary");
        return NULL;
    }
    PyObject *ldict = PyDict_GetItemWithError(tdict, s_local_key);
    if (ldict != NULL || PyErr_Occurred())
        return ldict;
    ldict = PyObject_GetAttr(worker_local, s___dict__);
    if (ldict == NULL)
        return NULL;
    int r = -1;
    if (!PyDict_CheckExact(ldict))
        PyErr_SetString(PyExc_TypeError, "coroutine: the worker local has no dict");
    else
        r = PyDict_SetItem(tdict, s_local_key, ldict);
    Py_DECREF(ldict); /* (the thread state's dictionary keeps it) */
    return r < 0 ? NULL : ldict;
}

/* _worker.release(g): back to this thread's pool, or dropped; a `_worker_once` worker is dead
 * already, and never pooled. */
static int
release_worker(PyObject *g)
{
    if (PyObject_SetAttr(g, s_gr_context, Py_None) < 0)
        return -1;
    if (PyGreenlet_STARTED((PyGreenlet *)g) && !PyGreenlet_ACTIVE((PyGreenlet *)g))
        return 0; /* worker.dead */
    PyObject *ldict = local_dict();
    if (ldict == NULL)
        return -1;
    PyObject *pool = PyDict_GetItemWithError(ldict, s_pool); /* borrowed */
    if (pool == NULL) {
        if (PyErr_Occurred())
            return -1;
        pool = PyList_New(0);
        int r = pool == NULL ? -1 : PyDict_SetItem(ldict, s_pool, pool);
        Py_XDECREF(pool); /* (the local's dictionary keeps it) */
        if (r < 0)
            return -1;
    }
    if (!PyList_CheckExact(pool)) {
        PyErr_SetString(PyExc_TypeError, "coroutine: the worker pool is not a list");
        return -1;
    }
    return PyList_GET_SIZE(pool) < pool_cap ? PyList_Append(pool, g) : 0;
}

/* _worker.acquire(): a parked worker popped from the pool, else the Python function. */
static PyObject *
acquire_worker(void)
{
    PyObject *ldict = local_dict();
    if (ldict == NULL)
        return NULL;
    PyObject *pool = PyDict_GetItemWithError(ldict, s_pool); /* borrowed */
    if (pool == NULL && PyErr_Occurred())
        return NULL;
    if (pool != NULL && PyList_CheckExact(pool) && PyList_GET_SIZE(pool) > 0) {
        Py_ssize_t n = PyList_GET_SIZE(pool) - 1; /* pool.pop(): its reference is ours */
        PyObject *g = PyList_GET_ITEM(pool, n);
        PyList_SET_ITEM(pool, n, NULL);
        Py_SET_SIZE(pool, n);
        return g;
    }
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
int
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
int
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
    PyGreenlet *parent = PyGreenlet_GetParent((PyGreenlet *)g);
    Py_XDECREF(parent); /* (compared by identity only) */
    if (parent == NULL && PyErr_Occurred())
        goto failed;
    if (parent != (PyGreenlet *)driver /* else g.parent = driver changes nothing */
        && PyGreenlet_SetParent((PyGreenlet *)g, (PyGreenlet *)driver) < 0)
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
