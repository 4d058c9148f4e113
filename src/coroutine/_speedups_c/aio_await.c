/* The body's side of the bridge: `await_`, and how it finds the bridge whose body it
 * runs in: the body's own greenlet, found first in a one-entry cache (`last`), or by walking
 * up greenlet parents (nested coroutines' workers) to a greenlet that carries the bridge's
 * weak reference under MARK. See aio.h. */

#include "aio.h"

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
referent(PyObject *ref)
{
    PyObject *obj = ((PyWeakReference *)ref)->wr_object;
    return Py_REFCNT(obj) > 0 ? obj : Py_None;
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
            PyObject *b = PyWeakref_Check(ref) ? referent(ref) : Py_None; /* borrowed */
            Py_DECREF(ref);
            Py_DECREF(g);
            if (!Py_IS_TYPE(b, &AioBridgeType))
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

PyObject *
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
        return PyErr_Occurred() ? NULL : aio_raise(py_outside, aw);
    }
    if (b->state != B_RUNNING) {
        Py_DECREF(current);
        return aio_raise(py_not_running, aw);
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

/* _bridge.await_'s docstring (tests/test_aio.py checks that they agree) */
const char aio_await_doc[] =
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
"        to the exception being handled, as ``await`` would).";
