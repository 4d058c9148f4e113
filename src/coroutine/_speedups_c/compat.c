/* Exceptions across CPython 3.10-3.13: the raised one fetched and restored as one object,
 * the handled one (sys.exc_info()) read and set, and the calls made "inside an except block".
 * 3.12 keeps one normalized exception object; 3.10-3.11 the (type, value, traceback) triple,
 * and 3.10 has no PyErr_GetHandledException. */

#include "speedups.h"


PyObject *
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

void
restore_exc(PyObject *v) /* steals v */
{
#if PY_VERSION_HEX >= 0x030C0000
    PyErr_SetRaisedException(v);
#else
    PyObject *tb = PyException_GetTraceback(v);
    PyErr_Restore(Py_NewRef((PyObject *)Py_TYPE(v)), v, tb);
#endif
}

PyObject *
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

void
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
PyObject *
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
int
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

/* The raised exception, with the library's frames taken out of its traceback by the Python
 * `_errors.trimmed`: every compiled entry point calls this on its way out with an error, so
 * the traceback reads like a generator's (the caller's line, then the body's frames). An
 * error raised while trimming is dropped: the exception itself matters more. */
void
trim_raised(void)
{
    PyObject *exc = fetch_exc();
    if (exc == NULL)
        return;
    PyObject *tb = PyException_GetTraceback(exc);
    if (tb != NULL) { /* (an exception made in C, a StopIteration say, has no frame to trim) */
        Py_DECREF(tb);
        PyObject *r = PyObject_CallOneArg(py_trimmed, exc);
        if (r == NULL)
            PyErr_Clear();
        Py_XDECREF(r);
    }
    restore_exc(exc);
}
