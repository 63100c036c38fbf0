/* The compiled walker of the builtin crawl engine: the same rows and errors-file records as
 * the Python walker (builtin.py, which stays the fallback and the reference), at the speed of
 * the system calls.
 *
 * Why C: the Python walker spends ~3 us of interpreter time per entry on top of the ~1 us the
 * kernel needs for getdents + fstatat; here the walkers are POSIX threads that never take the
 * GIL, so N threads use N cores in one process, and more threads than cores hide the latency
 * of a cold cache or a network file system.
 *
 * Shape (as in builtin.py): a shared stack of directories to read; each thread pops one,
 * opens it once (a path of PATH_MAX or more piece by piece with openat, so depth has no
 * limit), lists it with readdir on that descriptor and fstatat()s each name relative to it,
 * formats pwalk rows into a private 256 KiB buffer and pwrite()s full buffers at offsets
 * reserved with one atomic add (no lock, no O_APPEND).  Subdirectories go back on the stack.
 * Memory is bounded by the pending subdirectories, not the tree.  Errors-file records are
 * written under a lock.  Python only starts the walk and polls the counters for progress.
 *
 * Not done here (builtin.py does it): --exclude globs and the test seams.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#define OUT_BUF (256 << 10)
#define LONG_PATH 4000

typedef struct {
    unsigned long long ino, dev, nlink, uid, gid;
    long long size, blocks, atime, mtime, ctime;
    unsigned mode;
} RowStat;

typedef struct Anc {  /* (dev, ino) of a directory and the chain above it, refcounted */
    unsigned long long dev, ino;
    struct Anc *up;
    long refs;
} Anc;

typedef struct Item {
    char *path;
    size_t len;
    long depth;  /* directory-depth of its entries; its own row has depth - 1 */
    unsigned long long parent_ino;
    RowStat st;
    unsigned long long root_dev;
    Anc *anc;  /* the directories above it (not itself) */
    int skip;  /* index into Walk.skips, or -1 */
    struct Item *next;
} Item;

typedef struct {
    char **names;
    size_t *lens;
    Py_ssize_t n;
} SkipSet;

typedef struct {
    PyObject_HEAD
    pthread_mutex_t lock;
    pthread_cond_t cond;
    pthread_mutex_t err_lock;
    Item *stack;
    int active, done, abort, joined, nthreads;
    pthread_t *threads;
    int out_fd, err_fd;
    long long out_pos;
    long long entries, dirs, errors, skipped;
    int onefs, nosnap;
    int write_errno;
    SkipSet *skips;
    Py_ssize_t nskips;
} Walk;

/* ---- small helpers ------------------------------------------------------------------ */

static void rowstat_from(RowStat *r, const struct stat *s) {
    r->ino = s->st_ino; r->dev = s->st_dev; r->nlink = s->st_nlink;
    r->uid = s->st_uid; r->gid = s->st_gid; r->size = s->st_size; r->blocks = s->st_blocks;
    r->atime = s->st_atim.tv_sec; r->mtime = s->st_mtim.tv_sec; r->ctime = s->st_ctim.tv_sec;
    r->mode = s->st_mode;
}

static void anc_release(Anc *a) {
    while (a && __atomic_sub_fetch(&a->refs, 1, __ATOMIC_ACQ_REL) == 0) {
        Anc *up = a->up;
        free(a);
        a = up;
    }
}

static void item_free(Item *it) {
    anc_release(it->anc);
    free(it->path);
    free(it);
}

typedef struct {
    char *buf;
    size_t len, cap;
    long long rows, dirs;
} Out;

static void set_abort(Walk *w, int err) {
    pthread_mutex_lock(&w->lock);
    if (err && !w->write_errno)
        w->write_errno = err;
    w->abort = 1;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

static int write_all_at(int fd, const char *p, size_t n, long long off) {
    while (n) {
        ssize_t k = pwrite(fd, p, n, off);
        if (k < 0) {
            if (errno == EINTR) continue;
            return errno;
        }
        p += k; n -= (size_t)k; off += k;
    }
    return 0;
}

static void out_flush(Walk *w, Out *o) {
    if (o->len) {
        long long off = __atomic_fetch_add(&w->out_pos, (long long)o->len, __ATOMIC_RELAXED);
        int e = write_all_at(w->out_fd, o->buf, o->len, off);
        if (e) set_abort(w, e);
        o->len = 0;
    }
    __atomic_add_fetch(&w->entries, o->rows, __ATOMIC_RELAXED);
    __atomic_add_fetch(&w->dirs, o->dirs, __ATOMIC_RELAXED);
    o->rows = o->dirs = 0;
}

/* Room for ``need`` more bytes: flush first, grow only for a row longer than the buffer. */
static int out_room(Walk *w, Out *o, size_t need) {
    if (o->len + need <= o->cap) return 0;
    out_flush(w, o);
    if (need > o->cap) {
        char *nb = realloc(o->buf, need);
        if (!nb) return -1;
        o->buf = nb;
        o->cap = need;
    }
    return 0;
}

static inline char *put_u(char *p, unsigned long long v) {
    char tmp[24];
    int n = 0;
    do { tmp[n++] = (char)('0' + v % 10); v /= 10; } while (v);
    while (n) *p++ = tmp[--n];
    return p;
}

static inline char *put_i(char *p, long long v) {
    if (v < 0) { *p++ = '-'; return put_u(p, 0ULL - (unsigned long long)v); }
    return put_u(p, (unsigned long long)v);
}

static inline char *put_mode(char *p, unsigned m) {  /* "%07o" */
    char tmp[12];
    int n = 0;
    do { tmp[n++] = (char)('0' + (m & 7)); m >>= 3; } while (m);
    for (int k = n; k < 7; k++) *p++ = '0';
    while (n) *p++ = tmp[--n];
    return p;
}

static inline char *put_quoted(char *p, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"') *p++ = '"';
        *p++ = s[i];
    }
    return p;
}

/* ,uid,gid,size,dev,blocks,nlink,"mode",atime,mtime,ctime */
static inline char *put_stat_tail(char *p, const RowStat *s) {
    *p++ = ','; p = put_u(p, s->uid);
    *p++ = ','; p = put_u(p, s->gid);
    *p++ = ','; p = put_i(p, s->size);
    *p++ = ','; p = put_u(p, s->dev);
    *p++ = ','; p = put_i(p, s->blocks);
    *p++ = ','; p = put_u(p, s->nlink);
    *p++ = ','; *p++ = '"'; p = put_mode(p, s->mode); *p++ = '"';
    *p++ = ','; p = put_i(p, s->atime);
    *p++ = ','; p = put_i(p, s->mtime);
    *p++ = ','; p = put_i(p, s->ctime);
    return p;
}

#define TAIL_MAX (12 * 22 + 16)

static int dir_row(Walk *w, Out *o, const Item *it, long long fcount, long long dirsum) {
    if (out_room(w, o, 2 * it->len + 3 * 24 + TAIL_MAX + 48)) return -1;
    char *p = o->buf + o->len;
    p = put_u(p, it->st.ino); *p++ = ',';
    p = put_u(p, it->parent_ino); *p++ = ',';
    p = put_i(p, it->depth - 1); *p++ = ','; *p++ = '"';
    p = put_quoted(p, it->path, it->len);
    memcpy(p, "\",\"\"", 4); p += 4;  /* a directory has no extension, as in pwalk */
    p = put_stat_tail(p, &it->st);
    *p++ = ','; p = put_i(p, fcount);
    *p++ = ','; p = put_i(p, dirsum);
    *p++ = '\n';
    o->len = (size_t)(p - o->buf);
    o->rows++;
    o->dirs++;
    return 0;
}

/* ---- errors file -------------------------------------------------------------------- */

static const char K_UNREADABLE[] = "unreadable-dir", K_VANISHED[] = "vanished",
                  K_LSTAT[] = "lstat-failed", K_READDIR[] = "readdir-failed",
                  K_OTHER_FS[] = "other-filesystem", K_LOOP[] = "directory-loop";

/* "<kind>: <detail>\t<path with \ and newline escaped>\n" (errorlog.error_line); the path
 * is ``a`` or, with a name ``b``, ``a/b``. */
static void record(Walk *w, const char *kind, const char *detail, const char *a, size_t alen,
                   const char *b, size_t blen) {
    size_t cap = strlen(kind) + strlen(detail) + 2 * (alen + blen) + 10;
    char *line = malloc(cap), *p = line;
    if (!line) { set_abort(w, ENOMEM); return; }
    size_t k = strlen(kind);
    memcpy(p, kind, k); p += k;
    if (*detail) {
        *p++ = ':'; *p++ = ' ';
        k = strlen(detail); memcpy(p, detail, k); p += k;
    }
    *p++ = '\t';
    for (int part = 0; part < 2; part++) {
        const char *s = part ? b : a;
        size_t n = part ? blen : alen;
        if (part && !b) break;
        if (part) *p++ = '/';
        for (size_t i = 0; i < n; i++) {
            if (s[i] == '\\') { *p++ = '\\'; *p++ = '\\'; }
            else if (s[i] == '\n') { *p++ = '\\'; *p++ = 'n'; }
            else *p++ = s[i];
        }
    }
    *p++ = '\n';
    size_t n = (size_t)(p - line);
    pthread_mutex_lock(&w->err_lock);
    const char *q = line;
    int e = 0;
    while (n) {
        ssize_t r = write(w->err_fd, q, n);
        if (r < 0) { if (errno == EINTR) continue; e = errno; break; }
        q += r; n -= (size_t)r;
    }
    pthread_mutex_unlock(&w->err_lock);
    free(line);
    if (e) set_abort(w, e);
    if (kind == K_OTHER_FS) __atomic_add_fetch(&w->skipped, 1, __ATOMIC_RELAXED);
    else __atomic_add_fetch(&w->errors, 1, __ATOMIC_RELAXED);
}

/* strerror text as Python's OSError.strerror gives it */
static const char *errtext(int e, char *buf, size_t n) {
#if defined(__GLIBC__) && defined(_GNU_SOURCE)
    return strerror_r(e, buf, n);
#else
    if (strerror_r(e, buf, n)) snprintf(buf, n, "Unknown error %d", e);
    return buf;
#endif
}

/* ---- opening ------------------------------------------------------------------------ */

static int open_long(const char *path, size_t len, int flags) {
    if (len < LONG_PATH) return open(path, flags);
    int fd = AT_FDCWD;
    size_t start = 0;
    char piece[LONG_PATH + 1];
    while (len - start >= LONG_PATH) {
        size_t cut = 0;
        for (size_t i = start + LONG_PATH - 1; i > start; i--)
            if (path[i] == '/') { cut = i; break; }
        if (!cut) { if (fd != AT_FDCWD) close(fd); errno = ENAMETOOLONG; return -1; }
        memcpy(piece, path + start, cut - start);
        piece[cut - start] = 0;
        int nfd = openat(fd, piece, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        int e = errno;
        if (fd != AT_FDCWD) close(fd);
        if (nfd < 0) { errno = e; return -1; }
        fd = nfd;
        start = cut + 1;
    }
    int r = openat(fd, path + start, flags);
    int e = errno;
    if (fd != AT_FDCWD) close(fd);
    errno = e;
    return r;
}

static int is_link(const char *path) {
    struct stat s;
    return lstat(path, &s) == 0 && S_ISLNK(s.st_mode);
}

/* ---- one directory ------------------------------------------------------------------ */

static int in_skip(const SkipSet *s, const char *name, size_t n) {
    for (Py_ssize_t i = 0; i < s->n; i++)
        if (s->lens[i] == n && memcmp(s->names[i], name, n) == 0) return 1;
    return 0;
}

static int is_ancestor(const Item *it, unsigned long long dev, unsigned long long ino) {
    if (it->st.dev == dev && it->st.ino == ino) return 1;
    for (const Anc *a = it->anc; a; a = a->up)
        if (a->dev == dev && a->ino == ino) return 1;
    return 0;
}

/* Reads ``it``; returns its subdirectories as a list (NULL if none). */
static Item *scan(Walk *w, Out *o, Item *it) {
    char eb[256];
    int flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC | (it->depth ? O_NOFOLLOW : 0);
    int fd = open_long(it->path, it->len, flags);
    if (fd < 0) {
        int e = errno;
        if (it->depth && (e == ELOOP || e == ENOTDIR) && is_link(it->path))
            record(w, K_VANISHED, "replaced by a symlink, not followed", it->path, it->len,
                   NULL, 0);
        else if (e == ENOENT || e == ENOTDIR)
            record(w, K_VANISHED, errtext(e, eb, sizeof eb), it->path, it->len, NULL, 0);
        else {
            record(w, K_UNREADABLE, errtext(e, eb, sizeof eb), it->path, it->len, NULL, 0);
            if (dir_row(w, o, it, 0, 0)) set_abort(w, ENOMEM);
        }
        return NULL;
    }
    DIR *d = fdopendir(fd);
    if (!d) {
        int e = errno;
        close(fd);
        record(w, K_UNREADABLE, errtext(e, eb, sizeof eb), it->path, it->len, NULL, 0);
        if (dir_row(w, o, it, 0, 0)) set_abort(w, ENOMEM);
        return NULL;
    }
    /* per-directory head of every file row: ,<parent inode>,<depth>,"<quoted path>/ */
    size_t headcap = 2 * it->len + 64;
    char *head = malloc(headcap);
    if (!head) { closedir(d); set_abort(w, ENOMEM); return NULL; }
    char *h = head;
    *h++ = ','; h = put_u(h, it->st.ino);
    *h++ = ','; h = put_i(h, it->depth);
    *h++ = ','; *h++ = '"';
    h = put_quoted(h, it->path, it->len);
    *h++ = '/';
    size_t headlen = (size_t)(h - head);

    const SkipSet *skip = it->skip >= 0 ? &w->skips[it->skip] : NULL;
    Anc *mine = NULL;  /* this directory as the ancestor of its subdirectories */
    Item *subs = NULL;
    long long count = 0, total = 0;
    struct stat s;
    struct dirent *de;
    for (;;) {
        errno = 0;
        de = readdir(d);
        if (!de) {
            int e = errno;
            if (e) record(w, K_READDIR, errtext(e, eb, sizeof eb), it->path, it->len, NULL, 0);
            break;
        }
        const char *name = de->d_name;
        if (name[0] == '.' && (!name[1] || (name[1] == '.' && !name[2]))) continue;
        size_t nlen = strlen(name);
        count++;
        if (fstatat(fd, name, &s, AT_SYMLINK_NOFOLLOW) < 0) {
            int e = errno;
            record(w, (e == ENOENT || e == ENOTDIR) ? K_VANISHED : K_LSTAT,
                   errtext(e, eb, sizeof eb), it->path, it->len, name, nlen);
            continue;
        }
        if (w->onefs && (unsigned long long)s.st_dev != it->root_dev) {
            record(w, K_OTHER_FS, "not crossed (--one-file-system)", it->path, it->len, name,
                   nlen);
            continue;
        }
        total += s.st_size;
        if (S_ISDIR(s.st_mode)) {
            if (w->nosnap && (strcmp(name, ".snapshot") == 0 || strcmp(name, ".zfs") == 0))
                continue;
            if (skip && in_skip(skip, name, nlen)) continue;
            if (is_ancestor(it, s.st_dev, s.st_ino)) {
                record(w, K_LOOP, "same directory as an ancestor", it->path, it->len, name,
                       nlen);
                continue;
            }
            Item *c = malloc(sizeof *c);
            char *cp = c ? malloc(it->len + 1 + nlen + 1) : NULL;
            if (!mine && cp) {
                mine = malloc(sizeof *mine);
                if (mine) {
                    mine->dev = it->st.dev; mine->ino = it->st.ino; mine->up = it->anc;
                    mine->refs = 1;  /* this scan's own reference, dropped at the end */
                    if (it->anc) __atomic_add_fetch(&it->anc->refs, 1, __ATOMIC_RELAXED);
                }
            }
            if (!c || !cp || !mine) { free(c); free(cp); set_abort(w, ENOMEM); break; }
            memcpy(cp, it->path, it->len); cp[it->len] = '/';
            memcpy(cp + it->len + 1, name, nlen + 1);
            c->path = cp; c->len = it->len + 1 + nlen;
            c->depth = it->depth + 1;
            c->parent_ino = it->st.ino;
            rowstat_from(&c->st, &s);
            c->root_dev = it->root_dev;
            __atomic_add_fetch(&mine->refs, 1, __ATOMIC_RELAXED);
            c->anc = mine;
            c->skip = -1;
            c->next = subs;
            subs = c;
            continue;
        }
        /* a file row: <ino><head><quoted name>","<ext>",<stat tail>,-1,0 */
        if (out_room(w, o, 24 + headlen + 4 * nlen + TAIL_MAX + 16)) {
            set_abort(w, ENOMEM);
            break;
        }
        char *p = o->buf + o->len;
        p = put_u(p, s.st_ino);
        memcpy(p, head, headlen); p += headlen;
        p = put_quoted(p, name, nlen);
        *p++ = '"'; *p++ = ','; *p++ = '"';
        const char *dot = strrchr(name, '.');
        if (dot && dot != name) p = put_quoted(p, dot + 1, nlen - (size_t)(dot + 1 - name));
        *p++ = '"';
        RowStat rs;
        rowstat_from(&rs, &s);
        p = put_stat_tail(p, &rs);
        memcpy(p, ",-1,0\n", 6); p += 6;
        o->len = (size_t)(p - o->buf);
        o->rows++;
    }
    closedir(d);
    free(head);
    if (mine) anc_release(mine);
    if (dir_row(w, o, it, count, total)) set_abort(w, ENOMEM);
    return subs;
}

/* ---- threads ------------------------------------------------------------------------ */

static void *walker(void *arg) {
    Walk *w = arg;
    Out o = {malloc(OUT_BUF), 0, OUT_BUF, 0, 0};
    if (!o.buf) { set_abort(w, ENOMEM); return NULL; }
    for (;;) {
        pthread_mutex_lock(&w->lock);
        while (!w->stack && !w->done && !w->abort) {
            if (o.len || o.rows) {  /* nothing to do: let progress see what we hold */
                pthread_mutex_unlock(&w->lock);
                out_flush(w, &o);
                pthread_mutex_lock(&w->lock);
                continue;
            }
            pthread_cond_wait(&w->cond, &w->lock);
        }
        if (w->abort || (!w->stack && w->done)) {
            pthread_mutex_unlock(&w->lock);
            break;
        }
        Item *it = w->stack;
        w->stack = it->next;
        w->active++;
        pthread_mutex_unlock(&w->lock);

        Item *subs = scan(w, &o, it);
        item_free(it);

        pthread_mutex_lock(&w->lock);
        int pushed = 0;
        while (subs) {
            Item *n = subs->next;
            subs->next = w->stack;
            w->stack = subs;
            subs = n;
            pushed++;
        }
        w->active--;
        if (!w->stack && w->active == 0) {
            w->done = 1;
            pthread_cond_broadcast(&w->cond);
        } else if (pushed > 1) {
            pthread_cond_broadcast(&w->cond);
        } else if (pushed) {
            pthread_cond_signal(&w->cond);
        }
        pthread_mutex_unlock(&w->lock);
    }
    out_flush(w, &o);
    free(o.buf);
    pthread_mutex_lock(&w->lock);
    w->nthreads--;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

/* ---- Python type -------------------------------------------------------------------- */

static int parse_rowstat(PyObject *t, RowStat *r) {
    unsigned long long v[11];
    if (!PyTuple_Check(t) || PyTuple_GET_SIZE(t) != 11) {
        PyErr_SetString(PyExc_TypeError, "stat: an 11-tuple");
        return -1;
    }
    long long sv[11];
    for (int i = 0; i < 11; i++) {
        PyObject *x = PyTuple_GET_ITEM(t, i);
        sv[i] = PyLong_AsLongLong(x);
        if (PyErr_Occurred()) {  /* > LLONG_MAX: an unsigned field */
            PyErr_Clear();
            v[i] = PyLong_AsUnsignedLongLong(x);
            if (PyErr_Occurred()) return -1;
            sv[i] = (long long)v[i];
        }
        v[i] = (unsigned long long)sv[i];
    }
    /* (mode, ino, dev, nlink, uid, gid, size, atime, mtime, ctime, blocks) */
    r->mode = (unsigned)v[0]; r->ino = v[1]; r->dev = v[2]; r->nlink = v[3]; r->uid = v[4];
    r->gid = v[5]; r->size = sv[6]; r->atime = sv[7]; r->mtime = sv[8]; r->ctime = sv[9];
    r->blocks = sv[10];
    return 0;
}

static void walk_free_items(Walk *w) {
    Item *it = w->stack;
    while (it) { Item *n = it->next; item_free(it); it = n; }
    w->stack = NULL;
}

static void walk_join(Walk *w) {
    if (w->joined || !w->threads) return;
    Py_BEGIN_ALLOW_THREADS
    for (int i = 0; w->threads[i]; i++) pthread_join(w->threads[i], NULL);
    Py_END_ALLOW_THREADS
    w->joined = 1;
}

static void Walk_dealloc(Walk *w) {
    if (w->threads && !w->joined) {
        set_abort(w, 0);
        walk_join(w);
    }
    walk_free_items(w);
    free(w->threads);
    for (Py_ssize_t i = 0; i < w->nskips; i++) {
        for (Py_ssize_t j = 0; j < w->skips[i].n; j++) free(w->skips[i].names[j]);
        free(w->skips[i].names);
        free(w->skips[i].lens);
    }
    free(w->skips);
    pthread_mutex_destroy(&w->lock);
    pthread_mutex_destroy(&w->err_lock);
    pthread_cond_destroy(&w->cond);
    Py_TYPE(w)->tp_free((PyObject *)w);
}

/* Walk(items, out_fd, out_pos, err_fd, threads, one_file_system, no_snapshots)
 * items: [(path, depth, parent_inode, stat 11-tuple, root_dev, ancestors, skip or None)] */
static int Walk_init(Walk *w, PyObject *args, PyObject *kw) {
    PyObject *items;
    int out_fd, err_fd, nthreads, onefs, nosnap;
    long long out_pos;
    if (!PyArg_ParseTuple(args, "OiLiipp", &items, &out_fd, &out_pos, &err_fd, &nthreads,
                          &onefs, &nosnap))
        return -1;
    if (w->threads) {
        PyErr_SetString(PyExc_RuntimeError, "a Walk runs once");
        return -1;
    }
    PyObject *seq = PySequence_Fast(items, "items: a sequence");
    if (!seq) return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    w->skips = calloc((size_t)n + 1, sizeof(SkipSet));
    Item *list = NULL, **tail = &list;
    if (!w->skips) { Py_DECREF(seq); PyErr_NoMemory(); return -1; }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *t = PySequence_Fast_GET_ITEM(seq, i);
        const char *path;
        Py_ssize_t plen;
        long depth;
        unsigned long long pino, rdev;
        PyObject *st, *anc, *skip;
        if (!PyArg_ParseTuple(t, "y#lKOKOO", &path, &plen, &depth, &pino, &st, &rdev, &anc,
                              &skip))
            goto fail;
        Item *it = calloc(1, sizeof *it);
        if (!it) { PyErr_NoMemory(); goto fail; }
        *tail = it; tail = &it->next;
        it->path = malloc((size_t)plen + 1);
        if (!it->path) { PyErr_NoMemory(); goto fail; }
        memcpy(it->path, path, (size_t)plen + 1);
        it->len = (size_t)plen;
        it->depth = depth;
        it->parent_ino = pino;
        it->root_dev = rdev;
        it->skip = -1;
        if (parse_rowstat(st, &it->st)) goto fail;
        PyObject *aseq = PySequence_Fast(anc, "ancestors: a sequence");
        if (!aseq) goto fail;
        for (Py_ssize_t k = 0; k < PySequence_Fast_GET_SIZE(aseq); k++) {
            unsigned long long dev, ino;
            if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(aseq, k), "KK", &dev, &ino)) {
                Py_DECREF(aseq);
                goto fail;
            }
            Anc *a = malloc(sizeof *a);
            if (!a) { Py_DECREF(aseq); PyErr_NoMemory(); goto fail; }
            a->dev = dev; a->ino = ino; a->up = it->anc; a->refs = 1;
            it->anc = a;
        }
        Py_DECREF(aseq);
        if (skip != Py_None) {
            PyObject *sseq = PySequence_Fast(skip, "skip: a collection of names");
            if (!sseq) goto fail;
            SkipSet *ss = &w->skips[w->nskips];
            Py_ssize_t m = PySequence_Fast_GET_SIZE(sseq);
            ss->names = calloc((size_t)m + 1, sizeof(char *));
            ss->lens = calloc((size_t)m + 1, sizeof(size_t));
            it->skip = (int)w->nskips++;
            if (!ss->names || !ss->lens) { Py_DECREF(sseq); PyErr_NoMemory(); goto fail; }
            for (Py_ssize_t k = 0; k < m; k++) {
                char *b;
                Py_ssize_t bl;
                if (PyBytes_AsStringAndSize(PySequence_Fast_GET_ITEM(sseq, k), &b, &bl)) {
                    Py_DECREF(sseq);
                    goto fail;
                }
                ss->names[k] = malloc((size_t)bl + 1);
                if (!ss->names[k]) { Py_DECREF(sseq); PyErr_NoMemory(); goto fail; }
                memcpy(ss->names[k], b, (size_t)bl + 1);
                ss->lens[k] = (size_t)bl;
                ss->n++;
            }
            Py_DECREF(sseq);
        }
    }
    Py_DECREF(seq);
    /* first item first: a stack, so reverse */
    Item *rev = NULL;
    while (list) { Item *nx = list->next; list->next = rev; rev = list; list = nx; }
    w->stack = rev;
    w->out_fd = out_fd; w->out_pos = out_pos; w->err_fd = err_fd;
    w->onefs = onefs; w->nosnap = nosnap;
    if (nthreads < 1) nthreads = 1;
    w->threads = calloc((size_t)nthreads + 1, sizeof(pthread_t));
    if (!w->threads) { PyErr_NoMemory(); return -1; }
    if (!w->stack) w->done = 1;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    for (int i = 0; i < nthreads; i++) {
        pthread_mutex_lock(&w->lock);
        w->nthreads++;
        pthread_mutex_unlock(&w->lock);
        if (pthread_create(&w->threads[i], &attr, walker, w)) {
            pthread_mutex_lock(&w->lock);
            w->nthreads--;
            pthread_mutex_unlock(&w->lock);
            w->threads[i] = 0;
            if (i == 0) {
                pthread_attr_destroy(&attr);
                PyErr_SetString(PyExc_OSError, "cannot start a crawl thread");
                return -1;
            }
            break;
        }
    }
    pthread_attr_destroy(&attr);
    return 0;
fail:
    Py_DECREF(seq);
    while (list) { Item *nx = list->next; item_free(list); list = nx; }
    return -1;
}

static PyObject *Walk_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
    Walk *w = (Walk *)type->tp_alloc(type, 0);
    if (!w) return NULL;
    pthread_mutex_init(&w->lock, NULL);
    pthread_mutex_init(&w->err_lock, NULL);
    pthread_cond_init(&w->cond, NULL);
    return (PyObject *)w;
}

/* wait(timeout) -> True once every thread has finished (then joined) */
static PyObject *Walk_wait(Walk *w, PyObject *args) {
    double timeout;
    if (!PyArg_ParseTuple(args, "d", &timeout)) return NULL;
    int finished;
    Py_BEGIN_ALLOW_THREADS
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    long long ns = ts.tv_nsec + (long long)(timeout * 1e9);
    ts.tv_sec += (time_t)(ns / 1000000000LL);
    ts.tv_nsec = (long)(ns % 1000000000LL);
    pthread_mutex_lock(&w->lock);
    while (w->nthreads > 0) {
        if (pthread_cond_timedwait(&w->cond, &w->lock, &ts) == ETIMEDOUT) break;
    }
    finished = w->nthreads == 0;
    pthread_mutex_unlock(&w->lock);
    Py_END_ALLOW_THREADS
    if (finished) walk_join(w);
    return PyBool_FromLong(finished);
}

static PyObject *Walk_cancel(Walk *w, PyObject *unused) {
    set_abort(w, 0);
    walk_join(w);
    Py_RETURN_NONE;
}

/* counts() -> (entries, directories, errors, skipped) */
static PyObject *Walk_counts(Walk *w, PyObject *unused) {
    return Py_BuildValue("LLLL", __atomic_load_n(&w->entries, __ATOMIC_RELAXED),
                         __atomic_load_n(&w->dirs, __ATOMIC_RELAXED),
                         __atomic_load_n(&w->errors, __ATOMIC_RELAXED),
                         __atomic_load_n(&w->skipped, __ATOMIC_RELAXED));
}

/* result() -> (end offset of the output, errno of a failed write or 0) */
static PyObject *Walk_result(Walk *w, PyObject *unused) {
    return Py_BuildValue("Li", __atomic_load_n(&w->out_pos, __ATOMIC_RELAXED), w->write_errno);
}

static PyMethodDef Walk_methods[] = {
    {"wait", (PyCFunction)Walk_wait, METH_VARARGS, "wait(timeout) -> finished"},
    {"cancel", (PyCFunction)Walk_cancel, METH_NOARGS, "stop every thread and join them"},
    {"counts", (PyCFunction)Walk_counts, METH_NOARGS, "(entries, dirs, errors, skipped)"},
    {"result", (PyCFunction)Walk_result, METH_NOARGS, "(output end offset, write errno)"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject WalkType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "froster_slurm.crawl._fastwalk.Walk",
    .tp_basicsize = sizeof(Walk),
    .tp_dealloc = (destructor)Walk_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A crawl running in POSIX threads (see the module source).",
    .tp_methods = Walk_methods,
    .tp_init = (initproc)Walk_init,
    .tp_new = Walk_new,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_fastwalk", "The compiled walker of the builtin crawl engine.",
    -1, NULL, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__fastwalk(void) {
    if (PyType_Ready(&WalkType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    Py_INCREF(&WalkType);
    if (PyModule_AddObject(m, "Walk", (PyObject *)&WalkType) < 0) {
        Py_DECREF(&WalkType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
