/* The body's side of the switch protocol: _context.run_body, compiled (rule B3). A worker
 * (`_worker_main`, a Python frame: greenlet starts a greenlet in Python code) calls this for
 * each body; everything it does not run here -- `_swallowed_exit` for a stop's exit that C
 * code swallowed -- is the Python function the reference calls. */

#include "speedups.h"

/* _context._as_reported(ctx, exc), for an exception caught here: a new reference to what the
 * driver raises, Py_None for a quiet end, or NULL with an error (raised "in the except
 * block": chained to exc). The reference drops the first entry of exc's traceback, the frame
 * of run_body; this run_body has no frame, so the traceback starts in the body already. */
static PyObject *
as_reported(PyObject *ctx, PyObject *exc)
{
    if (PyObject_TypeCheck(exc, CoroutineExitType))
        return Py_NewRef(Py_None);
    PyObject *exit = SLOT(ctx, c_exit);
    if (exit != NULL && exit != Py_None) { /* else _swallowed_exit is False at once */
        PyObject *args[2] = {exit, exc};
        PyObject *r = call_handling(exc, py_swallowed_exit, args, 2);
        int swallowed = r == NULL ? -1 : PyObject_IsTrue(r);
        Py_XDECREF(r);
        if (swallowed != 0)
            return swallowed < 0 ? NULL : Py_NewRef(Py_None);
    }
    if (PyErr_GivenExceptionMatches(exc, PyExc_StopIteration)
        || PyErr_GivenExceptionMatches(exc, PyExc_StopAsyncIteration)) { /* PEP 479 */
        PyObject *name = PyObject_GetAttrString((PyObject *)Py_TYPE(exc), "__name__");
        PyObject *msg = name ? PyUnicode_FromFormat("coroutine body raised %S", name) : NULL;
        PyObject *err = msg ? PyObject_CallOneArg(PyExc_RuntimeError, msg) : NULL;
        Py_XDECREF(msg);
        Py_XDECREF(name);
        if (err != NULL)
            PyException_SetCause(err, Py_NewRef(exc)); /* err.__cause__ = exc */
        return err;
    }
    return Py_NewRef(exc);
}

/* run_body(ctx, fn, with_return): run one body to its end (B3); return the driver to park
 * with, or None if abandoned. Statement for statement the reference's. */
PyObject *
mod_run_body(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "run_body(ctx, fn, with_return)");
        return NULL;
    }
    if (!check_ready())
        return NULL;
    PyObject *ctx = args[0], *fn = args[1], *with_return = args[2];
    if (Py_TYPE(ctx) != CtxType) /* not reached by the protocol: the reference */
        return PyObject_Vectorcall(py_run_body, args, 3, NULL);
    /* try: */
    set_slot(ctx, c_vars, Py_None); /* started: a lost worker now means a finished body */
    PyObject *result = NULL, *token = PyContextVar_Set(CURRENT, ctx);
    if (token != NULL) {
        Py_DECREF(token);
        result = PyObject_CallNoArgs(fn);
    }
    if (result == NULL)
        goto raised;
    if (SLOT(ctx, c_state) == DONE) {
        Py_DECREF(result);
        Py_RETURN_NONE;
    }
    int keep = PyObject_IsTrue(with_return);
    if (keep > 0) {
        PyObject *stopping = get_slot(ctx, c_stopping, "_stopping");
        keep = stopping == NULL ? -1 : !PyObject_IsTrue(stopping);
        /* (PyObject_IsTrue of a bool cannot fail; _stopping is one) */
    }
    if (keep < 0) {
        Py_DECREF(result);
        return NULL;
    }
    if (keep)
        set_slot(ctx, c_result, result);
    Py_DECREF(result);
    set_slot(ctx, c_exit, Py_None);
    set_slot(ctx, c_state, DONE);
    PyObject *driver = get_slot(ctx, c_driver, "_driver");
    return driver == NULL ? NULL : Py_NewRef(driver);
raised: /* except BaseException as exc: */
    {
        PyObject *exc = fetch_exc();
        if (SLOT(ctx, c_state) == DONE) { /* abandoned: it yielded while stopped, or collected */
            if (PyObject_TypeCheck(exc, CoroutineExitType)) {
                Py_DECREF(exc);
                Py_RETURN_NONE;
            }
            restore_exc(exc); /* greenlet reports it as unraisable */
            return NULL;
        }
        PyObject *reported = as_reported(ctx, exc);
        Py_DECREF(exc);
        if (reported == NULL)
            return NULL;
        set_slot(ctx, c_exc, reported);
        Py_DECREF(reported);
        set_slot(ctx, c_exit, Py_None);
        set_slot(ctx, c_state, DONE);
        PyObject *driver = get_slot(ctx, c_driver, "_driver");
        return driver == NULL ? NULL : Py_NewRef(driver);
    }
}
