/* cwalk: the benchmark's baseline, a minimal C walker that writes pwalk's rows.
 *
 *     cwalk [-t THREADS] ROOT > OUT.csv
 *
 * What a crawler cannot go below on this machine, short of skipping work: one open + readdir
 * per directory, one fstatat per entry, one row per entry (same columns as pwalk, names quoted
 * with " doubled), written in 1 MiB blocks by THREADS threads (default 2) taking directories
 * from a shared stack.  No error records, no options, no limits checked: not for real use.
 * Built by `make bench` (bench/out/cwalk).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct Dir { char *path; long depth; unsigned long long pino; struct stat st;
                     struct Dir *next; } Dir;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static Dir *stack;
static int active, done;
static long long out_pos;

static size_t quote(char *o, const char *s) {
    size_t n = 0;
    for (; *s; s++) { if (*s == '"') o[n++] = '"'; o[n++] = *s; }
    o[n] = 0;
    return n;
}

static void flush(char *buf, size_t *len) {
    long long off = __atomic_fetch_add(&out_pos, (long long)*len, __ATOMIC_RELAXED);
    if (pwrite(1, buf, *len, off) != (ssize_t)*len) { perror("pwrite"); exit(1); }
    *len = 0;
}

static void row(char *buf, size_t *len, unsigned long long ino, unsigned long long pino,
                long depth, const char *qpath, const char *qext, const struct stat *s,
                long fcount, long dirsum) {
    if (*len + strlen(qpath) + 400 > (1 << 20)) flush(buf, len);
    *len += (size_t)sprintf(buf + *len,
        "%llu,%llu,%ld,\"%s\",\"%s\",%u,%u,%lld,%llu,%lld,%lu,\"%07o\",%ld,%ld,%ld,%ld,%ld\n",
        ino, pino, depth, qpath, qext, s->st_uid, s->st_gid, (long long)s->st_size,
        (unsigned long long)s->st_dev, (long long)s->st_blocks, (unsigned long)s->st_nlink,
        s->st_mode, (long)s->st_atime, (long)s->st_mtime, (long)s->st_ctime, fcount, dirsum);
}

static void *walker(void *arg) {
    (void)arg;
    char *buf = malloc(1 << 20), *q = malloc(1 << 16), *qe = malloc(1 << 12);
    char *child = malloc(1 << 16);
    size_t len = 0;
    for (;;) {
        pthread_mutex_lock(&lock);
        while (!stack && !done) pthread_cond_wait(&cond, &lock);
        if (!stack) { pthread_mutex_unlock(&lock); break; }
        Dir *d = stack; stack = d->next; active++;
        pthread_mutex_unlock(&lock);
        long count = 0, total = 0;
        Dir *subs = NULL;
        int fd = open(d->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        DIR *dp = fd < 0 ? NULL : fdopendir(fd);
        struct dirent *e;
        while (dp && (e = readdir(dp))) {
            if (e->d_name[0] == '.' && (!e->d_name[1] || (e->d_name[1] == '.' && !e->d_name[2])))
                continue;
            count++;
            struct stat s;
            if (fstatat(fd, e->d_name, &s, AT_SYMLINK_NOFOLLOW)) continue;
            total += s.st_size;
            snprintf(child, 1 << 16, "%s/%s", d->path, e->d_name);
            if (S_ISDIR(s.st_mode)) {
                Dir *c = malloc(sizeof *c);
                c->path = strdup(child); c->depth = d->depth + 1; c->pino = d->st.st_ino;
                c->st = s; c->next = subs; subs = c;
                continue;
            }
            const char *dot = strrchr(e->d_name, '.');
            quote(q, child);
            quote(qe, dot && dot != e->d_name ? dot + 1 : "");
            row(buf, &len, s.st_ino, d->st.st_ino, d->depth, q, qe, &s, -1, 0);
        }
        if (dp) closedir(dp);
        quote(q, d->path);
        row(buf, &len, d->st.st_ino, d->pino, d->depth - 1, q, "", &d->st, count, total);
        free(d->path); free(d);
        pthread_mutex_lock(&lock);
        while (subs) { Dir *n = subs->next; subs->next = stack; stack = subs; subs = n; }
        active--;
        if (!stack && !active) done = 1;
        pthread_cond_broadcast(&cond);
        pthread_mutex_unlock(&lock);
    }
    if (len) flush(buf, &len);
    return NULL;
}

int main(int argc, char **argv) {
    int threads = 2, i = 1;
    if (argc > 2 && !strcmp(argv[1], "-t")) { threads = atoi(argv[2]); i = 3; }
    if (i >= argc) { fprintf(stderr, "usage: cwalk [-t THREADS] ROOT\n"); return 64; }
    Dir *r = calloc(1, sizeof *r);
    r->path = strdup(argv[i]);
    if (lstat(r->path, &r->st)) { perror(r->path); return 66; }
    stack = r;
    out_pos = lseek(1, 0, SEEK_CUR);
    if (out_pos < 0) out_pos = 0;
    pthread_t t[256];
    if (threads < 1 || threads > 256) threads = 2;
    for (int k = 0; k < threads; k++) pthread_create(&t[k], NULL, walker, NULL);
    for (int k = 0; k < threads; k++) pthread_join(t[k], NULL);
    return 0;
}
