/* The driver's side of the switch protocol: _driver.start, resume and ended (rule E1), and
 * _worker.acquire and release (a per-thread pool of parked worker greenlets); and what a
 * worker runs, _worker.run_body and _worker_main's parking switch (rule B3). */

#include "speedups.h"

/* getcurrent().gr_context = vars, from the running worker (run_body's first and last
 * contextvars writes). For the running greenlet, greenlet's setter swaps the thread state's
 * context and bumps its version (which invalidates every ContextVar's cached lookup), as
 * done here directly; anything but a contextvars.Context or None goes through greenlet's
 * setter, which refuses it as the Python line does. */
static int
set_own_context(PyObject *vars)
{
    if (vars != Py_None && !PyContext_CheckExact(vars)) {
        PyObject *g = (PyObject *)PyGreenlet_GetCurrent();
        int r = g == NULL ? -1 : PyObject_SetAttr(g, s_gr_context, vars);
        Py_XDECREF(g);
        return r;
    }
    PyThreadState *ts = PyThreadState_Get();
    PyObject *old = ts->context;
    ts->context = vars == Py_None ? NULL : Py_NewRef(vars);
    ts->context_ver++;
    Py_XDECREF(old);
    return 0;
}

/* This thread's dictionary of `_worker._local` (the threading.local whose `pool` is the
 * thread's pool), borrowed, or NULL with an error. Looked up through the local once per
 * thread, then kept in the thread state's dictionary, which dies with the thread as the
 * local's dictionary does; and the last thread's is remembered with its thread state's id
 * (unique for the process's life, unlike the thread state's address or the thread's ident):
 * one comparison instead of the local's attribute protocol. */
static uint64_t last_thread_id;
static PyObject *last_ldict; /* strong: the dictionary of the thread whose id is above */

static PyObject *
local_dict(void)
{
    PyThreadState *tstate = PyThreadState_Get();
    uint64_t id = PyThreadState_GetID(tstate);
    if (last_ldict != NULL && id == last_thread_id)
        return last_ldict;
    PyObject *tdict = PyThreadState_GetDict();
    if (tdict == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "coroutine: no thread state dictionary");
        return NULL;
    }
    PyObject *ldict = PyDict_GetItemWithError(tdict, s_local_key);
    if (ldict == NULL) {
        if (PyErr_Occurred())
            return NULL;
        ldict = PyObject_GetAttr(worker_local, s___dict__);
        if (ldict == NULL)
            return NULL;
        int r = -1;
        if (!PyDict_CheckExact(ldict))
            PyErr_SetString(PyExc_TypeError, "coroutine: the worker local has no dict");
        else
            r = PyDict_SetItem(tdict, s_local_key, ldict);
        Py_DECREF(ldict); /* (the thread state's dictionary keeps it) */
        if (r < 0)
            return NULL;
    }
    Py_INCREF(ldict);
    Py_XSETREF(last_ldict, ldict);
    last_thread_id = id;
    return ldict;
}

static dict_memo pool_memo; /* the last thread's pool, in its local's dictionary */

/* _worker.release(g): back to this thread's pool, or dropped; a `_worker_once` worker is dead
 * already, and never pooled. */
static int
release_worker(PyObject *g)
{
    if (PyGreenlet_STARTED((PyGreenlet *)g) && !PyGreenlet_ACTIVE((PyGreenlet *)g))
        return 0; /* worker.dead */
    PyObject *ldict = local_dict();
    if (ldict == NULL)
        return -1;
    PyObject *pool = memo_lookup(&pool_memo, ldict, s_pool); /* borrowed */
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
    PyObject *pool = memo_lookup(&pool_memo, ldict, s_pool); /* borrowed */
    if (pool == NULL && PyErr_Occurred())
        return NULL;
    if (pool != NULL && PyList_CheckExact(pool) && PyList_GET_SIZE(pool) > 0) {
        Py_ssize_t n = PyList_GET_SIZE(pool) - 1; /* pool.pop(): its reference is ours */
        PyObject *g = PyList_GET_ITEM(pool, n);
        PyList_SET_ITEM(pool, n, NULL);
        Py_SET_SIZE(pool, n);
        return g;
    }
    /* A new worker, as _worker.acquire makes one: inside a body, the Python function (a
     * `_worker_once`); else a `_worker_main`, started by start_body's first switch. */
    PyObject *current = NULL;
    if (PyContextVar_Get(CURRENT, NULL, &current) < 0)
        return NULL;
    int inside = current != NULL && current != Py_None;
    Py_XDECREF(current);
    if (inside)
        return PyObject_CallNoArgs(py_acquire);
    return (PyObject *)PyGreenlet_New(py_worker_main, NULL);
}

/* _driver.ended (rule E1): 0 (the body ended quietly), or -1 with what it raised. */
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

/* What a switch into the body came back with (consumed): 1 if the body yielded again, else
 * rule E1 (`ended`): 0, or -1 with what the body raised. */
static int
yielded_or_ended(PyObject *coro, PyObject *ctx, PyObject *out)
{
    int r = SLOT(ctx, c_state) == SUSPENDED ? 1 : ended(coro, ctx, out);
    Py_DECREF(out);
    return r;
}

/* _driver.resume: 1 (yielded again), 0 (ended), -1 (raised). `exc` and `driver` may be NULL. */
int
resume_body(PyObject *coro, PyObject *value, PyObject *exc, PyObject *driver)
{
    PyObject *ctx = get_slot(coro, k_ctx, "_ctx");
    if (ctx == NULL)
        return -1;
    Py_INCREF(ctx);
    PyObject *g = SLOT(coro, k_g);
    if (g == NULL || !is_greenlet(g)) { /* not reached by the protocol: the reference */
        /* which takes the current greenlet as its driver, always */
        PyObject *current = driver ? Py_NewRef(driver) : (PyObject *)PyGreenlet_GetCurrent();
        if (current == NULL) {
            Py_DECREF(ctx);
            return -1;
        }
        PyObject *args[4] = {coro, value, exc ? exc : Py_None, current};
        PyObject *r = PyObject_Vectorcall(py_resume, args, 4, NULL);
        Py_DECREF(current);
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
    int r = yielded_or_ended(coro, ctx, out);
    Py_DECREF(ctx);
    return r;
fail_early:
    Py_DECREF(g);
    Py_DECREF(ctx);
    return -1;
}

/* The task (ctx, body, with_return) a worker runs, in a recycled tuple when there is one: a
 * body that ended in the switch that started it (the worker has dropped the task) leaves its
 * tuple, emptied, for the next start, saving an allocation and a deallocation. */
static PyObject *spare_task;

static PyObject *
new_task(PyObject *ctx, PyObject *body, PyObject *with_return)
{
#if PY_VERSION_HEX >= 0x030E0000 /* 3.14 caches a tuple's hash: never recycle one */
    Py_CLEAR(spare_task);
#endif
    PyObject *task = spare_task;
    if (task == NULL)
        return PyTuple_Pack(3, ctx, body, with_return);
    spare_task = NULL;
    PyObject *items[3] = {ctx, body, with_return};
    for (Py_ssize_t i = 0; i < 3; i++) {
        PyObject *none = PyTuple_GET_ITEM(task, i);
        PyTuple_SET_ITEM(task, i, Py_NewRef(items[i]));
        Py_DECREF(none);
    }
    if (!PyObject_GC_IsTracked(task)) /* (the collector untracks a tuple of None) */
        PyObject_GC_Track(task);
    return task;
}

static void
drop_task(PyObject *task)
{
    if (Py_REFCNT(task) == 1 && spare_task == NULL) {
        for (Py_ssize_t i = 0; i < 3; i++) {
            PyObject *item = PyTuple_GET_ITEM(task, i);
            PyTuple_SET_ITEM(task, i, Py_NewRef(Py_None));
            Py_DECREF(item);
        }
        if (spare_task == NULL && Py_REFCNT(task) == 1) { /* (no release above took it) */
            spare_task = task;
            return;
        }
    }
    Py_DECREF(task);
}

/* g.switch(task) for a worker not started yet. greenlet keeps a greenlet's first arguments
 * for as long as it runs, but the worker's frame holds its own references to them: the task
 * is taken out of them here, lest a pooled worker keep its first body's task alive. (The
 * Python `acquire` starts a new worker to park at once instead: `_worker_main`'s docstring.)
 * Fresh greenlets are never started with the recycled tuples of switch_to. */
static PyObject *
start_worker(PyObject *g, PyObject *task)
{
    PyObject *args = PyTuple_Pack(1, task);
    if (args == NULL)
        return NULL;
    PyObject *out = PyGreenlet_Switch((PyGreenlet *)g, args, NULL);
    PyObject *item = PyTuple_GET_ITEM(args, 0);
    PyTuple_SET_ITEM(args, 0, Py_NewRef(Py_None));
    Py_DECREF(item);
    Py_DECREF(args);
    return out;
}

/* id(g), as an int kept for the last address asked: an id is the address, so the int is
 * right for whatever greenlet lives there (a pooled worker runs body after body). */
static PyObject *
worker_id(PyObject *g)
{
    static PyObject *last_id;
    static void *last_address;
    if (last_id == NULL || last_address != (void *)g) {
        PyObject *id = PyLong_FromVoidPtr(g);
        if (id == NULL)
            return NULL;
        Py_XSETREF(last_id, id);
        last_address = (void *)g;
    }
    return Py_NewRef(last_id);
}

/* _driver.start, for the created coroutine `coro` (its task: (ctx, _body, _with_return)). */
int
start_body(PyObject *coro, PyObject *ctx)
{
    PyObject *body = get_slot(coro, k_body, "_body");
    PyObject *with_return = body ? get_slot(coro, k_with_return, "_with_return") : NULL;
    if (with_return == NULL)
        return -1;
    PyObject *task = new_task(ctx, body, with_return);
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
    set_slot(coro, k_g, g);
    PyObject *gid = worker_id(g);
    if (gid == NULL)
        goto failed;
    set_slot(ctx, c_gid, gid);
    Py_DECREF(gid);
    set_slot(ctx, c_driver, driver);
    set_slot(ctx, c_state, RUNNING);
    out = PyGreenlet_STARTED((PyGreenlet *)g) ? switch_to(g, task) : start_worker(g, task);
    if (out == NULL)
        goto failed;
    drop_task(task);
    Py_DECREF(g);
    Py_DECREF(driver);
    int r = yielded_or_ended(coro, ctx, out);
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

/* -- the worker: _worker.run_body and _worker_main's switch, compiled ---------------------- */

/* A worker made by the compiled acquire runs `_accel.worker_main`: `_worker._worker_main`'s
 * loop in Python, the body called from it (so the body's frames run in that loop's
 * evaluation, with no second C evaluation frame on the worker's stack: 200 bytes per
 * suspended coroutine), and these four steps of `run_body` and the parking switch in C:
 *
 *     fn = worker_begin(task)
 *     try: driver = worker_done(task, fn())
 *     except BaseException as exc: driver = worker_failed(task, exc)
 *     ...  task = worker_park(driver)  (which begins the next task)
 */

/* A Python bool's truth without a call; anything else as Python tests it (-1: raised). */
static inline int
truth(PyObject *v)
{
    return v == Py_True ? 1 : v == Py_False ? 0 : PyObject_IsTrue(v);
}

/* The Context of a task the driver made, (Context, body, with_return), borrowed; else NULL
 * (no error set). */
static inline PyObject *
ctx_of(PyObject *task)
{
    return PyTuple_CheckExact(task) && PyTuple_GET_SIZE(task) == 3
                   && Py_IS_TYPE(PyTuple_GET_ITEM(task, 0), CtxType)
               ? PyTuple_GET_ITEM(task, 0)
               : NULL;
}

/* ctx_of(task), or NULL with TypeError (Python's `run_body(*task)` would refuse it too, out
 * of the worker). */
static PyObject *
task_ctx(PyObject *task)
{
    PyObject *ctx = ctx_of(task);
    if (ctx == NULL)
        PyErr_Format(PyExc_TypeError, "coroutine: a worker was handed %R, not a task", task);
    return ctx;
}

/* run_body's start: the body to call. (Outside the loop's try, unlike run_body's: a failure
 * here, MemoryError at worst, escapes the worker to its driver, which finds the coroutine
 * RUNNING and rolls it back, rule D3, where run_body would report it as the body's.) */
static int
begin(PyObject *task)
{
    PyObject *ctx = task_ctx(task);
    if (ctx == NULL)
        return -1;
    PyObject *vars = get_slot(ctx, c_vars, "_vars");
    if (vars == NULL || set_own_context(vars) < 0)
        return -1;
    set_slot(ctx, c_vars, Py_None); /* started: from here on, a lost worker means it ended */
    PyObject *token = PyContextVar_Set(CURRENT, ctx);
    if (token == NULL)
        return -1;
    Py_DECREF(token);
    return 0;
}

static PyObject *
worker_begin(PyObject *mod, PyObject *task)
{
    return begin(task) < 0 ? NULL : Py_NewRef(PyTuple_GET_ITEM(task, 1));
}

/* run_body's except branch (called inside the worker's except block: `exc` is the handled
 * exception): the driver to park with, None if abandoned; or raises `exc` again. */
static PyObject *
worker_failed(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2)
        return PyErr_Format(PyExc_TypeError, "worker_failed(task, exc)");
    PyObject *ctx = ctx_of(args[0]);
    PyObject *exc = args[1];
    if (ctx == NULL || SLOT(ctx, c_state) == DONE) {
        /* abandoned (it yielded while stopped, or was collected); or no task at all */
        if (ctx != NULL && PyErr_GivenExceptionMatches(exc, exc_coroutine_exit))
            Py_RETURN_NONE;
        restore_exc(Py_NewRef(exc)); /* raise: greenlet reports it as unraisable */
        return NULL;
    }
    PyObject *a[2] = {ctx, exc};
    PyObject *reported = PyObject_Vectorcall(py_as_reported, a, 2, NULL);
    if (reported == NULL)
        return NULL;
    set_slot(ctx, c_exc, reported);
    Py_DECREF(reported);
    if (set_own_context(Py_None) < 0) /* a parked worker keeps nothing of the body */
        return NULL;
    set_slot(ctx, c_exit, Py_None);
    set_slot(ctx, c_state, DONE);
    return Py_XNewRef(get_slot(ctx, c_driver, "_driver"));
}

/* run_body's end after the body returned `result`: the driver to park with, or None. */
static PyObject *
worker_done(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2)
        return PyErr_Format(PyExc_TypeError, "worker_done(task, result)");
    PyObject *ctx = task_ctx(args[0]);
    if (ctx == NULL)
        return NULL;
    if (SLOT(ctx, c_state) == DONE)
        Py_RETURN_NONE;
    if (set_own_context(Py_None) < 0)
        return NULL;
    int keep = truth(PyTuple_GET_ITEM(args[0], 2));
    if (keep > 0) {
        PyObject *stopping = get_slot(ctx, c_stopping, "_stopping");
        keep = stopping == NULL ? -1 : truth(stopping);
        keep = keep < 0 ? -1 : !keep;
    }
    if (keep < 0)
        return NULL;
    if (keep)
        set_slot(ctx, c_result, args[1]);
    set_slot(ctx, c_exit, Py_None);
    set_slot(ctx, c_state, DONE);
    return Py_XNewRef(get_slot(ctx, c_driver, "_driver"));
}

/* _worker_main's `driver.switch(PARKED)`: the next task, begun (`worker_begin`), or None if
 * there is no driver (the body was abandoned) or the worker is dropped (GreenletExit: from
 * the pool, or by an interrupted hand-off). */
static PyObject *
worker_park(PyObject *mod, PyObject *driver)
{
    if (driver == Py_None) /* the body was abandoned: its worker dies */
        Py_RETURN_NONE;
    PyObject *task = is_greenlet(driver) ? switch_to(driver, PARKED)
                                         : PyObject_CallMethodOneArg(driver, s_switch, PARKED);
    if (task == NULL && PyErr_ExceptionMatches(PyExc_GreenletExit)) {
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    if (task != NULL && begin(task) < 0)
        Py_CLEAR(task);
    return task;
}

PyMethodDef worker_methods[] = {
    {"worker_begin", (PyCFunction)worker_begin, METH_O,
     "worker_begin($module, task, /)\n--\n\n_worker.run_body's start: the body to call."},
    {"worker_failed", (PyCFunction)(void (*)(void))worker_failed, METH_FASTCALL,
     "worker_failed($module, task, exc, /)\n--\n\n_worker.run_body's except branch."},
    {"worker_done", (PyCFunction)(void (*)(void))worker_done, METH_FASTCALL,
     "worker_done($module, task, result, /)\n--\n\n_worker.run_body's end."},
    {"worker_park", (PyCFunction)worker_park, METH_O,
     "worker_park($module, driver, /)\n--\n\n_worker._worker_main's parking switch, then "
     "worker_begin of the task it brings."},
    {NULL, NULL, 0, NULL},
};
