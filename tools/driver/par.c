/* tools/driver/par.c - the work distribution of `dc eval` (par.h): MPI
   point-to-point messages between ranks in the `make MPI=1` build
   (DC_MPI), and within a process the images the library says to run at
   once (dc_images_at_once), one per OpenMP thread (par_for, which `dc
   classify` uses too).

   Protocol: a worker sends TAG_UP messages to rank 0, each "INDEX LINE"
   (the result of the image it was given; empty for its first request);
   rank 0 answers each with TAG_DOWN, one int: the next image, or -1 (stop).
   A worker thus holds one image at a time, and the job ends when every
   worker has been told to stop, which happens only in answer to its last
   result. Rank 0 computes images too: with few ranks that is a large share
   of the work (2 ranks: half), and it answers requests after every
   denoiser batch of its own image, a wait of well under an image. The
   driver's state here is per process, as the driver's always is; the
   library keeps none. */
#define _POSIX_C_SOURCE 200809L
#include "par.h"
#include "driver.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef DC_MPI
#include <mpi.h>
#endif
#ifdef _OPENMP
#include <omp.h>
#endif

enum { TAG_UP = 1, TAG_DOWN = 2 };

static struct {
    int mpi;            /* this process joined an MPI job */
    int size, rank;
    const par_work *w;  /* during par_run on rank 0 */
    const int *todo;
    int n, next;        /* todo[next] is the next image to hand out */
    int workers;        /* ranks not yet told to stop */
    int serving;        /* inside par_serve (it is not re-entered) */
} P = {0, 1, 0, NULL, NULL, 0, 0, 0, 0};

int par_start(int *argc, char ***argv, int *rank)
{
    (void)argc, (void)argv;
    *rank = 0;
#ifdef DC_MPI
    /* launched by mpirun (Open MPI), srun --mpi=pmix / pmi2, or MPICH's
       hydra: each sets one of these; a plain start runs as one process */
    static const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"};
    int launched = 0;
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) launched |= getenv(vars[i]) != NULL;
    if (!launched) return 1;
    int provided;
    /* only the main thread calls MPI; OpenMP threads compute */
    MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
    P.mpi = 1;
    driver_exit_hook(par_abort);
    MPI_Comm_size(MPI_COMM_WORLD, &P.size);
    MPI_Comm_rank(MPI_COMM_WORLD, &P.rank);
    *rank = P.rank;
#endif
    return P.size;
}

void par_stop(void)
{
#ifdef DC_MPI
    if (P.mpi) MPI_Finalize();
#endif
    P.mpi = 0;
    driver_exit_hook(NULL);
}

void par_abort(int code)
{
    fflush(stdout);
    fflush(stderr);
#ifdef DC_MPI
    if (P.mpi) MPI_Abort(MPI_COMM_WORLD, code);
#endif
    (void)code;
}

/* the calling thread: worker 0 (OpenMP's thread 0 inside par_for) */
static int main_thread(void)
{
#ifdef _OPENMP
    return omp_get_thread_num() == 0;
#else
    return 1;
#endif
}

/* A worker's next image, or -1: todo is shared with par_serve's answers */
static int next_image(void)
{
    int image = -1;
#ifdef _OPENMP
#pragma omp critical(par_next)
#endif
    if (P.next < P.n) image = P.todo[P.next++];
    return image;
}

static void accept_line(int image, int rank, const char *line)
{
#ifdef _OPENMP
#pragma omp critical(par_accept)
#endif
    P.w->accept(P.w->user, image, rank, line);
}

static void tick(void)
{
    if (!P.w || !P.w->tick) return;
#ifdef _OPENMP
#pragma omp critical(par_accept)
#endif
    P.w->tick(P.w->user);
}

void par_serve(void)
{
    if (!P.w || !main_thread()) return;
    tick();
#ifdef DC_MPI
    if (!P.mpi || P.rank != 0 || P.serving) return;
    P.serving = 1;
    for (;;) {
        int flag = 0, len = 0;
        MPI_Status st;
        MPI_Iprobe(MPI_ANY_SOURCE, TAG_UP, MPI_COMM_WORLD, &flag, &st);
        if (!flag) break;
        MPI_Get_count(&st, MPI_CHAR, &len);
        char *msg = malloc((size_t)len + 1);
        if (!msg) die("%s", "eval: out of memory");
        MPI_Recv(msg, len, MPI_CHAR, st.MPI_SOURCE, TAG_UP, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        msg[len] = 0;
        if (len) {
            char *sp = strchr(msg, ' ');
            if (!sp) die("eval: a rank sent a message that is not a result: '%.200s'", msg);
            accept_line(atoi(msg), st.MPI_SOURCE, sp + 1);
        }
        free(msg);
        int next = next_image();
        if (next < 0) P.workers--;
        MPI_Send(&next, 1, MPI_INT, st.MPI_SOURCE, TAG_DOWN, MPI_COMM_WORLD);
    }
    P.serving = 0;
#endif
}

#ifdef DC_MPI
static void worker_loop(const par_work *w)
{
    MPI_Send("", 0, MPI_CHAR, 0, TAG_UP, MPI_COMM_WORLD);
    for (;;) {
        int image;
        MPI_Recv(&image, 1, MPI_INT, 0, TAG_DOWN, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        if (image < 0) break;
        char *line = w->compute(w->user, 0, image);
        size_t n = strlen(line);
        char *msg = malloc(n + 16);
        if (!msg) die("%s", "eval: out of memory");
        int len = snprintf(msg, n + 16, "%d %s", image, line);
        MPI_Send(msg, len, MPI_CHAR, 0, TAG_UP, MPI_COMM_WORLD);
        free(msg);
        free(line);
    }
}
#endif

/* one turn of par_run on this rank: the next image, if any is left (par_for
   gives n turns, and other ranks take images from todo too) */
static void run_local(void *user, int worker, int k)
{
    (void)k;
    const par_work *w = user;
    int image = next_image();
    if (image < 0) return;
    char *line = w->compute(w->user, worker, image);
    accept_line(image, 0, line);
    free(line);
    par_serve();
}

void par_run(const int *todo, int n, const par_work *w, const par_workers *pw)
{
#ifdef DC_MPI
    if (P.mpi && P.rank != 0) {
        worker_loop(w);
        return;
    }
#endif
    P.w = w, P.todo = todo, P.n = n, P.next = 0, P.workers = P.mpi ? P.size - 1 : 0;
    par_serve();
    par_for(pw, n, run_local, (void *)w);
    while (P.workers > 0) { /* the last images are out on other ranks */
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
        par_serve();
    }
    P.w = NULL;
}

void par_workers_open(par_workers *pw, const dc_model *m, dc_ctx *first, int n_images)
{
    int n = dc_images_at_once(m);
    if (n > n_images) n = n_images;
    if (n < 1) n = 1;
    pw->ctx = calloc((size_t)n, sizeof *pw->ctx);
    if (!pw->ctx) die("%s", "out of memory");
    pw->n = n;
    pw->ctx[0] = first;
    for (int i = 1; i < n; i++) {
        dc_error err;
        if (dc_ctx_new(&pw->ctx[i], m, &err) != DC_OK) die("%s", err.msg);
    }
}

void par_workers_close(par_workers *pw)
{
    for (int i = 1; i < pw->n; i++) dc_ctx_free(pw->ctx[i]);
    free(pw->ctx);
    pw->ctx = NULL, pw->n = 0;
}

void par_for(const par_workers *pw, int n, void (*one)(void *user, int worker, int k), void *user)
{
    if (pw->n <= 1) {
        for (int k = 0; k < n; k++) one(user, 0, k);
        return;
    }
#ifdef _OPENMP
    /* each worker runs dc at one thread: its layers are not split, and
       OpenBLAS, inside a parallel region, multiplies on the calling thread */
#pragma omp parallel num_threads(pw->n)
    {
        omp_set_num_threads(1);
#pragma omp for schedule(dynamic, 1)
        for (int k = 0; k < n; k++) one(user, omp_get_thread_num(), k);
    }
#else
    for (int k = 0; k < n; k++) one(user, 0, k);
#endif
}
