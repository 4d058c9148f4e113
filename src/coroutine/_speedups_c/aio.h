/* coroutine.aio's driver, compiled: what its three files share.
 *
 * The same handshake as the reference, src/coroutine/_bridge.py (rules A1-A6 and W1 in its
 * docstring), on the same kind of state. One difference of shape: the reference's driver is a
 * generator that delegates to the awaitable in flight with `yield from`; here the Bridge is
 * itself the iterator the task's `await` delegates to, and does PEP 380's delegation by hand:
 * `send`, `throw` and `close` go to the awaitable in flight (`inner`), and what it raises goes
 * to the body, at its `await_` (A5). `inner` is therefore kept while the task is suspended in
 * it (the reference keeps it in the generator's frame).
 *
 * A body awaits in three steps, two switches: `await_` switches to the driver with AWAIT; the
 * driver sends None to the awaitable's iterator (PyIter_Send: a native coroutine runs without
 * a StopIteration object), and if it returns at once, switches straight back with its value;
 * else it yields what the awaitable yielded to the event loop, and the next send resumes it.
 *
 *   aio_await.c  the body's side: `await_`, and how it finds its bridge
 *   aio.c        the driver's side: start, resume and what a switch came back with (A1-A6);
 *                the Python helpers bound by aio_setup(), and the module's part
 *   aio_iter.c   the Bridge type: the iterator protocol the task drives (PEP 380)
 *
 * The only functions that switch greenlets are `aio_start`, `aio_resume` and `aio_await`.
 */
#ifndef COROUTINE_AIO_H
#define COROUTINE_AIO_H

#include "speedups.h"

#if defined(__GNUC__) && !defined(_WIN32)
#pragma GCC visibility push(hidden)
#endif

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

extern PyTypeObject AioBridgeType;
extern PyObject *SIG_AWAIT;   /* await_ -> driver: `inner` is to be awaited */
extern PyObject *thrown_type; /* _bridge.Thrown: driver -> await_, an exception to raise */
extern PyObject *a_mark, *a_throw, *a_close, *a_value, *a_exc;
extern PyObject *py_outside, *py_not_running, *py_awaitable_iter, *py_stop_error,
    *py_wrong_thread, *py_foreign, *py_abandoned;
extern int aio_ready;
extern Bridge *last; /* borrowed: the bridge whose body last ran (cleared when it dies) */
extern const char aio_await_doc[];

PyObject *aio_raise(PyObject *fn, PyObject *arg);
PyObject *aio_await(PyObject *mod, PyObject *aw);
int aio_start(Bridge *self, PyObject **ended);
int aio_resume(Bridge *self, PyObject *value, PyObject *exc, PyObject **ended);
int aio_resumed_by(Bridge *self, PySendResult s, PyObject *res, PyObject **ended);
PySendResult aio_await_loop(Bridge *self, int r, PyObject *ended, PyObject **result);

#if defined(__GNUC__) && !defined(_WIN32)
#pragma GCC visibility pop
#endif

static inline int
is_dead(PyObject *g) /* started and finished */
{
    return PyGreenlet_STARTED((PyGreenlet *)g) && !PyGreenlet_ACTIVE((PyGreenlet *)g);
}

#endif /* COROUTINE_AIO_H */
