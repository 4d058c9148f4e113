/* coroutine._speedups: the switch protocol's hot paths, compiled.
 *
 * Theory of operation. This extension is an optional accelerator, not a second
 * implementation: `_context.py`, `_worker.py`, `_driver.py`, `_yield.py`, `_coroutine.py`,
 * `_new.py` and `_run.py` stay the reference (`_accel.py` wires this in), and every function
 * here is a statement-for-statement translation of the common case of one of them, reading
 * and writing the same `__slots__` of the same Python objects (at the offsets their member
 * descriptors give). Anything rare -- a refusal, a stop, a durable coroutine, an error to
 * build, `recover`, the slow path of `_advance` -- calls back into the Python function that
 * is the reference. The numbered rules of `_context`'s docstring hold
 * here as there:
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
 *   B3  `worker_failed` and `worker_done` (driver.c) write `_exc`/`_result`, then DONE,
 *       then return the driver, to which `worker_park` switches, as `_worker.run_body` and
 *       `_worker_main` do.
 *
 * The only functions here that switch greenlets are `resume_body`, `start_body` and
 * `YieldSite_call`, and `worker_park` to park (tests/test_switch_protocol.py greps these
 * files for PyGreenlet_Switch).
 *
 * Memory invariant (as in `_context`): the yield site holds, across its switch, only the
 * context, the driver greenlet and the values; never the Coroutine object or the worker.
 *
 * One file per concern, in the order a reader meets them:
 *
 *   speedups.h   this header: the objects bound by setup(), slot access, the switch helper
 *   compat.c     exceptions: fetch/restore and the handled exception across CPython 3.10-3.13,
 *                and the library's frames taken out of one leaving it (`_errors.trimmed`)
 *   driver.c     the driver's side: start, resume, ended; the worker pool; the worker's loop
 *   methods.c    Coroutine's Next/Recv/Send/__next__/send/__del__
 *   run.c        Run's loop, resume and creation (module functions)
 *   yieldsite.c  the yield site: the compiled function behind one `Yield[R, S]`
 *   table.c      the type tables (`Yield`, `New[R, S]`): identity caches in front
 *   decode.c     the durable value decoder's loop (`durable._decode`), its own concern
 *   module.c     setup() (binding to the Python side) and the module's initialisation
 */
#ifndef COROUTINE_SPEEDUPS_H
#define COROUTINE_SPEEDUPS_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pythread.h>
#include <stddef.h>
#include <structmember.h>

/* greenlet.h declares its API table `static`, one per file: renamed away here, the macros
 * read instead the one table every file shares (set by PyGreenlet_Import() in module.c). */
#define _PyGreenlet_API coroutine_greenlet_api_unused
#include "greenlet.h"
#undef _PyGreenlet_API
#define _PyGreenlet_API coroutine_greenlet_api
static inline void **
coroutine_greenlet_api_unused_ref(void) /* (keeps the renamed static from warning) */
{
    return coroutine_greenlet_api_unused;
}

#if defined(__GNUC__) && !defined(_WIN32)
#pragma GCC visibility push(hidden) /* the module's names are its own, not the process's */
#endif

extern void **coroutine_greenlet_api;

/* -- objects from the Python side, set once by setup() (module.c) -------------------------- */

extern int ready;
extern PyObject *CREATED, *SUSPENDED, *RUNNING, *DONE;
extern PyObject *NOTHING, *THROWN, *ABANDONED, *PARKED;
extern PyObject *CURRENT; /* the ContextVar */
extern PyTypeObject *SignalType, *CoroType, *CtxType;
extern PyObject *py_recover, *py_ended, *py_adopt, *py_signalled, *py_killed;
extern PyObject *py_del, *py_create, *py_check_entry, *py_acquire, *py_bad_send, *py_resume;
extern PyObject *py_run_refused; /* _run.refused: the TypeError for Run's arguments */
extern PyObject *py_run_stopped; /* _run.stopped: the StoppedError for a stopped body */
extern PyObject *py_as_reported; /* _worker._as_reported: what the driver raises for a body */
extern PyObject *exc_coroutine_exit; /* _errors.CoroutineExit */
extern PyObject *py_worker_main; /* _accel.worker_main: what a new worker runs */
extern PyMethodDef worker_methods[]; /* driver.c: run_body's steps and the parking switch */
extern PyObject *py_trimmed;     /* _errors.trimmed: the library's frames out of a traceback */
extern PyObject *py_throw, *py_close, *py_exit; /* Coroutine's throw, close, __exit__ as written */
extern PyObject *create_flags;   /* _new's dictionary, for its DURABLE flag */
extern PyObject *worker_local;   /* _worker._local (threading.local) */
extern Py_ssize_t pool_cap;
extern PyObject *s_advance, *s_close, *s_pool, *s_gr_context, *s_local_key, *s___dict__;
extern PyObject *s_DURABLE;
extern PyObject *s_Next, *s_next, *s_send, *s_switch;

/* slot offsets: c_ Context's, k_ Coroutine's, g_ Signature's */
extern Py_ssize_t c_state, c_sig, c_stopping, c_durable, c_sent, c_driver, c_recv, c_exc,
    c_gid, c_vars, c_result, c_thread, c_coro, c_exit;
extern Py_ssize_t k_ctx, k_g, k_fn, k_body, k_with_return;
extern Py_ssize_t g_check_s, g_s;
extern PyTypeObject *worker_type; /* the last greenlet subclass seen as a worker */
extern PyObject *spare_args;      /* switch_to's recycled argument tuple, or NULL */
extern PyGetSetDef gr_context;    /* greenlet's gr_context descriptor's functions */

extern PyMethodDef coro_methods[]; /* __del__ first */
extern PyMethodDef module_methods[];
extern PyObject *coro_del_descr;     /* Coroutine.__del__, the compiled one */
void Coro_finalize(PyObject *self);
int install_dealloc(PyTypeObject *type, int which); /* 1 if installed */
PyObject *new_instance(PyTypeObject *type);         /* tp_alloc, or a kept instance */
extern PyTypeObject YieldSiteType, YieldTableType, SubscriptType, FactoryType;

/* -- compat.c ------------------------------------------------------------------------------ */

PyObject *fetch_exc(void);
void restore_exc(PyObject *v);
PyObject *get_handled(void);
void set_handled(PyObject *v);
PyObject *call_handling(PyObject *exc, PyObject *fn, PyObject *const *args, size_t nargs);
int recover_and_raise(PyObject *coro);
void trim_raised(void);

/* -- driver.c, methods.c, run.c ------------------------------------------------------------ */

int resume_body(PyObject *coro, PyObject *value, PyObject *exc, PyObject *driver);
int start_body(PyObject *coro, PyObject *ctx);
int advance(PyObject *self, PyObject *op, PyObject *value);
int next_op(PyObject *self, PyObject *op);
PyObject *mod_resume(PyObject *mod, PyObject *const *args, Py_ssize_t nargs);
PyObject *mod_run(PyObject *mod, PyObject *const *args, Py_ssize_t nargs);
PyObject *mod_create(PyObject *mod, PyObject *const *args, size_t nargsf, PyObject *kwnames);

/* -- decode.c ------------------------------------------------------------------------------ */

PyObject *mod_decode_setup(PyObject *mod, PyObject *ns);

#if defined(__GNUC__) && !defined(_WIN32)
#pragma GCC visibility pop
#endif

static inline int
check_ready(void)
{
    if (!ready)
        PyErr_SetString(PyExc_RuntimeError, "coroutine._speedups used before setup()");
    return ready;
}

/* -- slots ---------------------------------------------------------------------------------- */

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

/* -- dictionary lookups remembered while the dictionary is unchanged ------------------------ */

/* d[key] for a dictionary read at every creation (`_new`'s DURABLE, the thread's pool), kept
 * with the dictionary's version tag (PEP 509): any change to the dictionary changes the tag,
 * and the next lookup is made again. CPython 3.12 deprecates the tag but keeps it up to date
 * (its dict watchers use it); from 3.14 on, every lookup is made. */
typedef struct {
    PyObject *dict;  /* not a reference: only compared (tags are unique to a dictionary) */
    PyObject *value; /* borrowed from dict, which holds it while the tag is unchanged */
    uint64_t tag;
} dict_memo;

#if PY_VERSION_HEX < 0x030E0000
#define DICT_MEMO 1
static inline uint64_t
dict_tag(PyObject *d)
{
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#endif
    return ((PyDictObject *)d)->ma_version_tag;
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif
}
#else
#define DICT_MEMO 0
#endif

/* d[key], borrowed; NULL if absent (no error) or with an error set. `d` is an exact dict.
 * A tag comes from a global counter, new at each change of any dictionary and at each
 * dictionary's creation: so an equal tag at the same address is the same, unchanged
 * dictionary (no reference to it is needed). */
static inline PyObject *
memo_lookup(dict_memo *m, PyObject *d, PyObject *key)
{
#if DICT_MEMO
    if (m->dict == d && m->tag == dict_tag(d) && m->value != NULL)
        return m->value;
#endif
    PyObject *v = PyDict_GetItemWithError(d, key); /* (runs no code: key is a str) */
#if DICT_MEMO
    m->dict = d;
    m->tag = dict_tag(d);
    m->value = v;
#else
    (void)m;
#endif
    return v;
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

/* A suspended coroutine that nothing stops: the common case of every driving method. */
static inline int
is_plain_suspended(PyObject *ctx)
{
    return SLOT(ctx, c_state) == SUSPENDED && SLOT(ctx, c_stopping) == Py_False;
}

#endif /* COROUTINE_SPEEDUPS_H */
