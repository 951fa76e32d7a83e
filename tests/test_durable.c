/* tests/test_durable.c - `dc eval` loses nothing and counts nothing twice:
   runs killed at random moments and resumed, a write that fails (a file-size
   limit stands in for a full disk), a torn last line, a second writer, paths
   that are not files, a calibration resumed or written late. The dc binary
   runs as a subprocess, as a user runs it, on a few Fashion-MNIST test
   images with the small DiT fixture and a short schedule. */
#define _POSIX_C_SOURCE 200809L
#include "test.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define FMNIST "/usr/share/datasets/fashion-mnist/"
#define SCHEDULE "--stop adaptive --samples 2,6 --keep 2,1"

static char model[1024];
static char out[65536];

/* 1 if the model and the data set are there; else the test fails, naming the missing one */
static int have_inputs(void)
{
    snprintf(model, sizeof model, "%s", t_path(T.tmp, "dit_vae.dcw"));
    CHECK(t_readable(model), "%s missing (prepared by tools/refs/prepare_tests.py from tests/fixtures)", model);
    CHECK(t_readable(FMNIST "t10k-images-idx3-ubyte.gz"),
          "Fashion-MNIST missing: install Debian's dataset-fashion-mnist (make setup)");
    return t_readable(model) && t_readable(FMNIST "t10k-images-idx3-ubyte.gz");
}

/* "eval -m MODEL IMAGES LABELS --limit N SCHEDULE --quiet --results R EXTRA" */
static void eval_args(char *buf, size_t cap, int limit, const char *results, const char *extra)
{
    snprintf(buf, cap, "eval -m '%s' " FMNIST "t10k-images-idx3-ubyte.gz " FMNIST "t10k-labels-idx1-ubyte.gz "
             "--limit %d %s --quiet --results '%s' %s", model, limit, SCHEDULE, results, extra);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Runs dc ARGS under /bin/sh with its output in out; exit status, or -1.
   fsize > 0: under that file-size limit, SIGXFSZ ignored (a full disk
   without mounting one); the output comes through a pipe, which the limit
   does not touch. */
static int run(const char *args, long fsize)
{
    char cmd[9400];
    snprintf(cmd, sizeof cmd, "exec '%s' %s 2>&1", T.dc, args);
    int fds[2];
    if (pipe(fds) != 0) return -1;
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], 1);
        close(fds[1]);
        if (fsize > 0) {
            struct rlimit rl = {(rlim_t)fsize, (rlim_t)fsize};
            signal(SIGXFSZ, SIG_IGN);
            setrlimit(RLIMIT_FSIZE, &rl);
        }
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    size_t n = 0;
    ssize_t got;
    while ((got = read(fds[0], out + n, sizeof out - 1 - n)) > 0 || (got < 0 && errno == EINTR))
        if (got > 0) n += (size_t)got;
    out[n] = 0;
    close(fds[0]);
    int st = -1;
    if (pid < 0 || waitpid(pid, &st, 0) != pid) return -1;
    if (WIFSIGNALED(st)) snprintf(out + n, sizeof out - n, "(dc killed by signal %d)", WTERMSIG(st));
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The file's lines with each row's "seconds" value blanked (the only
   field that differs between runs); NULL if unreadable. */
static char *rows_of(const char *path, int *lines)
{
    char *s = t_read_file(path, NULL);
    if (!s) return NULL;
    *lines = 0;
    for (char *p = s; (p = strchr(p, '\n')); p++) ++*lines;
    for (char *p = s; (p = strstr(p, "\"seconds\": ")); ) {
        p += 11;
        while (*p && *p != ',' && *p != '}') *p++ = '#';
    }
    return s;
}

static long file_size(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? (long)sb.st_size : -1;
}

static int count_lines(const char *path)
{
    FILE *f = fopen(path, "r");
    int n = 0, c;
    if (!f) return 0;
    while ((c = fgetc(f)) != EOF) n += c == '\n';
    fclose(f);
    return n;
}

/* 1 if the file's last byte is a newline (only whole lines) */
static int ends_whole(const char *path)
{
    FILE *f = fopen(path, "rb");
    int last = -1, c;
    if (!f) return 0;
    while ((c = fgetc(f)) != EOF) last = c;
    fclose(f);
    return last == '\n';
}

/* The whole-run reference: N images in one uninterrupted run. */
#define N_IMAGES 12
static char ref_path[1024];
static double ref_seconds;
static int reference(void)
{
    if (ref_path[0]) return 1;
    char args[8192];
    snprintf(ref_path, sizeof ref_path, "%s", t_path(T.tmp, "durable_ref.jsonl"));
    remove(ref_path);
    eval_args(args, sizeof args, N_IMAGES, ref_path, "");
    double t0 = now();
    int rc = run(args, 0);
    ref_seconds = now() - t0;
    CHECK(rc == 0 && count_lines(ref_path) == N_IMAGES + 1, "reference run: exit %d, %d lines: %s", rc,
          count_lines(ref_path), out);
    if (rc) ref_path[0] = 0;
    return rc == 0;
}

static int cmp_line(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The lines of text (cut in place), sorted, joined again by newlines: rows
   reach the file in the order images finish, which with several images at
   once (par_for) or MPI ranks is any order. */
static void sort_lines(char *text, int lines)
{
    char **l = malloc(sizeof(char *) * (size_t)(lines + 1)), *copy = malloc(strlen(text) + 1);
    if (!l || !copy) {
        free(l), free(copy);
        return;
    }
    strcpy(copy, text);
    int n = 0;
    for (char *p = copy; *p && n <= lines; n++) {
        l[n] = p;
        char *e = strchr(p, '\n');
        if (!e) {
            n++;
            break;
        }
        *e = 0, p = e + 1;
    }
    qsort(l, (size_t)n, sizeof *l, cmp_line);
    text[0] = 0;
    for (int i = 0; i < n; i++) strcat(strcat(text, l[i]), "\n");
    free(l), free(copy);
}

/* 1 if path holds exactly the reference's rows (in any order) */
static int same_as_reference(const char *path, const char *what)
{
    int nr = 0, np = 0;
    char *a = rows_of(ref_path, &nr), *b = rows_of(path, &np);
    if (a) sort_lines(a, nr);
    if (b) sort_lines(b, np);
    int same = a && b && !strcmp(a, b);
    CHECK(same, "%s: %d lines differ from the uninterrupted run's %d:\n%.2000s\n---\n%.2000s", what, np, nr,
          b ? b : "(none)", a ? a : "(none)");
    free(a), free(b);
    return same;
}

/* One attempt: runs `cmd` from an empty results file, killing it at random
   moments (each round waits for at least one new row, then kills within
   about two images of per_image seconds: while an image is computed, a
   row is written or the file synced), until a run finishes. Returns the
   kills that landed with the run part done; *finished: the last run ended
   by itself. */
static int kill_and_resume(const char *path, const char *cmd, double per_image, int *kills, int *finished)
{
    int mid_run = 0;
    remove(path);
    *kills = 0, *finished = 0;
    for (int round = 0; round < 4 * N_IMAGES && !*finished; round++) {
        int before = count_lines(path);
        pid_t pid = fork();
        if (pid == 0) {
            execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
            _exit(127);
        }
        if (pid < 0) break;
        int st, exited = 0;
        double t0 = now();
        int floor = before > 1 ? before : 1; /* wait for a new row (not just the header) */
        while (!(exited = waitpid(pid, &st, WNOHANG) == pid) && count_lines(path) <= floor && now() - t0 < 60) {
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
        }
        if (!exited) {
            long us = (long)(2 * per_image * 1e6 * (rand() / (RAND_MAX + 1.0)));
            struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
            nanosleep(&ts, NULL);
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            if (WIFSIGNALED(st)) {
                (*kills)++;
                int now_lines = count_lines(path);
                mid_run += now_lines > 1 && now_lines < N_IMAGES + 1;
                continue;
            }
        }
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "round %d: dc ended with status %d", round, st);
        *finished = WIFEXITED(st);
    }
    return mid_run;
}

static void killed_runs_should_resume_to_the_uninterrupted_rows(void)
{
    if (!have_inputs()) return;
    if (!reference()) return;
    char path[1024], args[8192], cmd[9400];
    snprintf(path, sizeof path, "%s", t_path(T.tmp, "durable_crash.jsonl"));
    eval_args(args, sizeof args, N_IMAGES, path, "");
    snprintf(cmd, sizeof cmd, "exec '%s' %s >/dev/null 2>&1", T.dc, args);
    unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
    srand(seed);
    /* The kills are timed from the reference run's pace; when the machine's
       load falls, a run can outpace them, so an attempt in which no kill
       landed mid-run is repeated with kills twice as early. */
    int kills = 0, mid_run = 0, finished = 0;
    for (int attempt = 0; attempt < 4 && !mid_run; attempt++) {
        mid_run = kill_and_resume(path, cmd, ref_seconds / N_IMAGES / (1 << attempt), &kills, &finished);
        printf("  attempt %d: %d kills (%d with the run part done), seed %u\n", attempt + 1, kills, mid_run, seed);
    }
    if (!finished) CHECK(run(args, 0) == 0, "the last resume failed: %s", out);
    CHECK(mid_run >= 1, "no kill landed mid-run (seed %u): the test did not test", seed);
    same_as_reference(path, "killed and resumed");
}

static void a_torn_last_line_should_be_cut_before_resuming(void)
{
    if (!have_inputs()) return;
    if (!reference()) return;
    char path[1024], args[8192];
    snprintf(path, sizeof path, "%s", t_path(T.tmp, "durable_torn.jsonl"));
    /* the header, 3 rows and half of the 4th, as a kill in mid-write leaves it */
    FILE *in = fopen(ref_path, "rb"), *o = fopen(path, "wb");
    CHECK(in && o, "cannot copy %s", ref_path);
    if (!in || !o) {
        if (in) fclose(in);
        if (o) fclose(o);
        return;
    }
    int lines = 0, c, col = 0;
    while ((c = fgetc(in)) != EOF && !(lines == 4 && col == 60)) {
        fputc(c, o);
        col++;
        if (c == '\n') lines++, col = 0;
    }
    fclose(in), fclose(o);
    eval_args(args, sizeof args, N_IMAGES, path, "");
    int rc = run(args, 0);
    CHECK(rc == 0 && strstr(out, "ended in an incomplete line (60 bytes") && strstr(out, "cut off"),
          "exit %d: %s", rc, out);
    same_as_reference(path, "torn and resumed");
}

static void a_failed_write_should_stop_the_run_and_say_how_to_resume(void)
{
    if (!have_inputs()) return;
    if (!reference()) return;
    char path[1024], args[8192];
    snprintf(path, sizeof path, "%s", t_path(T.tmp, "durable_full.jsonl"));
    remove(path);
    /* room for the header, 3 rows and half of the 4th */
    FILE *in = fopen(ref_path, "rb");
    long limit = 0, end3 = 0;
    int lines = 0, c;
    while (in && (c = fgetc(in)) != EOF) {
        limit++;
        if (c == '\n' && ++lines == 4) end3 = limit;
        if (lines == 5) break;
    }
    if (in) fclose(in);
    limit = end3 + (limit - end3) / 2;
    eval_args(args, sizeof args, N_IMAGES, path, "");
    int rc = run(args, limit);
    char want[1200];
    snprintf(want, sizeof want, "cannot write '%s': File too large", path);
    CHECK(rc == 1 && strstr(out, want) && strstr(out, "holds the results of 3 images") &&
          strstr(out, "rerun the same command"), "exit %d (want 1), output: %s", rc, out);
    CHECK(!strstr(out, "images:"), "a run that lost results printed a summary: %s", out);
    CHECK(count_lines(path) == 4 && ends_whole(path), "the file holds %d lines, not the header and 3 whole rows",
          count_lines(path));
    /* the header alone does not fit: nothing but the message */
    remove(path);
    rc = run(args, 20);
    CHECK(rc == 1 && strstr(out, "holds the results of 0 images") && file_size(path) == 0,
          "header write failure: exit %d, %ld bytes: %s", rc, file_size(path), out);
    /* rerun without the limit: the rest, and the same rows as one run */
    remove(path);
    run(args, limit);
    rc = run(args, 0);
    CHECK(rc == 0, "resume: exit %d: %s", rc, out);
    same_as_reference(path, "failed and resumed");
}

static void a_second_writer_should_be_refused_at_once(void)
{
    if (!have_inputs()) return;
    char path[1024], args[8192], cmd[9400];
    snprintf(path, sizeof path, "%s", t_path(T.tmp, "durable_lock.jsonl"));
    remove(path);
    eval_args(args, sizeof args, 10000, path, "");
    snprintf(cmd, sizeof cmd, "exec '%s' %s >/dev/null 2>&1", T.dc, args);
    pid_t pid = fork();
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    double t0 = now();
    while (file_size(path) <= 0 && now() - t0 < 60) { /* the header is written under the lock */
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
    }
    int rc = run(args, 0);
    char want[128];
    snprintf(want, sizeof want, "being written by process %ld", (long)pid);
    CHECK(rc == 1 && strstr(out, want) && strstr(out, "another --results file"), "exit %d (want 1): %s", rc, out);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    /* once the first is gone, the file is free again */
    eval_args(args, sizeof args, 2, path, "");
    CHECK(run(args, 0) == 0, "after the writer died: %s", out);
}

static void results_should_be_a_regular_file(void)
{
    if (!have_inputs()) return;
    char args[8192], fifo[1024];
    static const struct { const char *path, *expect; } cases[] = {
        {"/dev/full", "'/dev/full' is a device"},
        {"/dev/null", "'/dev/null' is a device"},
        {".", "'.' is a directory"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        eval_args(args, sizeof args, 2, cases[i].path, "");
        int rc = run(args, 0);
        CHECK(rc == 2 && strstr(out, cases[i].expect) && strstr(out, "regular file"), "%s: exit %d: %s",
              cases[i].path, rc, out);
    }
    snprintf(fifo, sizeof fifo, "%s", t_path(T.tmp, "durable.fifo"));
    remove(fifo);
    if (mkfifo(fifo, 0600) == 0) { /* opening a pipe would wait for a writer: refused before */
        eval_args(args, sizeof args, 2, fifo, "");
        int rc = run(args, 0);
        CHECK(rc == 2 && strstr(out, "is a pipe"), "fifo: exit %d: %s", rc, out);
        remove(fifo);
    }
}

static void damaged_and_repeated_rows_should_count_once(void)
{
    if (!have_inputs()) return;
    if (!reference()) return;
    char path[1024], args[8192], line[65536];
    snprintf(path, sizeof path, "%s", t_path(T.tmp, "durable_damaged.jsonl"));
    /* header, row 0, row 0 again, a damaged line, row 1 */
    FILE *in = fopen(ref_path, "r"), *o = fopen(path, "w");
    char *l0 = NULL, *l1 = NULL, *l2 = NULL;
    if (in && fgets(line, sizeof line, in)) l0 = strdup(line);
    if (in && fgets(line, sizeof line, in)) l1 = strdup(line);
    if (in && fgets(line, sizeof line, in)) l2 = strdup(line);
    CHECK(o && l0 && l1 && l2, "cannot read %s", ref_path);
    if (o && l0 && l1 && l2) fprintf(o, "%s%s%s{\"index\": 7, \"label\": {\"index\": 3}\n%s", l0, l1, l1, l2);
    if (in) fclose(in);
    if (o) fclose(o);
    free(l0), free(l1), free(l2);
    eval_args(args, sizeof args, 3, path, "--json");
    int rc = run(args, 0);
    CHECK(rc == 0 && strstr(out, "1 row(s) repeat an image") && strstr(out, "1 line(s) are neither results") &&
          strstr(out, "\"n\": 3,"), "exit %d: %s", rc, out);
    /* --merge: the same file and a copy count each image once */
    snprintf(args, sizeof args, "eval --merge '%s' '%s' --json", path, path);
    rc = run(args, 0);
    CHECK(rc == 0 && strstr(out, "\"n\": 3,") && strstr(out, "repeat an image"), "merge: exit %d: %s", rc, out);
}

static void calibration_should_not_depend_on_how_the_run_was_split(void)
{
    if (!have_inputs()) return;
    char ra[1024], rb[1024], ca[1024], cb[1024], args[8192], extra[1100];
    snprintf(ra, sizeof ra, "%s", t_path(T.tmp, "durable_cal_a.jsonl"));
    snprintf(rb, sizeof rb, "%s", t_path(T.tmp, "durable_cal_b.jsonl"));
    snprintf(ca, sizeof ca, "%s", t_path(T.tmp, "durable_cal_a.txt"));
    snprintf(cb, sizeof cb, "%s", t_path(T.tmp, "durable_cal_b.txt"));
    remove(ra), remove(rb), remove(ca), remove(cb);
    /* one run of 8 images */
    snprintf(extra, sizeof extra, "--samples 6 --keep 1 --calibrate '%s'", ca);
    eval_args(args, sizeof args, 8, ra, extra);
    CHECK(run(args, 0) == 0, "whole: %s", out);
    /* 3 images, then the calibration write fails (full disk), then the same command again */
    snprintf(extra, sizeof extra, "--samples 6 --keep 1 --calibrate '%s'", cb);
    eval_args(args, sizeof args, 3, rb, extra);
    CHECK(run(args, 0) == 0, "first 3: %s", out);
    eval_args(args, sizeof args, 8, rb, "--samples 6 --keep 1 --calibrate /dev/full");
    int rc = run(args, 0);
    CHECK(rc == 1 && strstr(out, "cannot write '/dev/full'") && strstr(out, "rerun the same command"),
          "calibration on a full disk: exit %d: %s", rc, out);
    eval_args(args, sizeof args, 8, rb, extra);
    CHECK(run(args, 0) == 0, "rest: %s", out);
    int n;
    char *a = rows_of(ca, &n), *b = rows_of(cb, &n);
    CHECK(a && b && !strcmp(a, b) && strstr(a, "on 8 labelled images"),
          "calibrations differ:\n%.1500s\n---\n%.1500s", a ? a : "(none)", b ? b : "(none)");
    free(a), free(b);
    /* results without the timestep sums cannot give a calibration */
    if (reference()) {
        eval_args(args, sizeof args, 3, ref_path, "--samples 6 --keep 1 --calibrate x.txt");
        rc = run(args, 0);
        CHECK(rc == 2 && strstr(out, "without their timestep sums"), "exit %d: %s", rc, out);
    }
    eval_args(args, sizeof args, 3, ra, "--samples 6 --keep 1 --calibrate '.'");
    rc = run(args, 0);
    CHECK(rc == 2 && strstr(out, "is a directory"), "calibrate into a folder: exit %d: %s", rc, out);
}

void suite_durable(void)
{
    RUN(killed_runs_should_resume_to_the_uninterrupted_rows);
    RUN(a_torn_last_line_should_be_cut_before_resuming);
    RUN(a_failed_write_should_stop_the_run_and_say_how_to_resume);
    RUN(a_second_writer_should_be_refused_at_once);
    RUN(results_should_be_a_regular_file);
    RUN(damaged_and_repeated_rows_should_count_once);
    RUN(calibration_should_not_depend_on_how_the_run_was_split);
}
