/* tools/dc_main.c - the `dc` command-line driver.

   Parses options, calls the library, prints. The only place in dc that
   calls exit(). Commands grow with the model families; each has --help. */
#define _POSIX_C_SOURCE 200809L
#include "../dc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *usage_text =
    "usage: dc COMMAND [OPTIONS] ...\n"
    "\n"
    "dc turns diffusion models into image classifiers, on a CPU.\n"
    "\n"
    "commands:\n"
    "  info MODEL        describe a .dcw model file (-v: list every tensor)\n"
    "  forward -m MODEL COMPONENT IN.npy... -o OUT.npy\n"
    "                    run one network on .npy inputs (components: dit, text)\n"
    "  blas              show the OpenBLAS kernel in use and what the CPU supports\n"
    "  version           print the version\n"
    "\n"
    "global options (before or after the command):\n"
    "  -t, --threads N   threads for dc and OpenBLAS (default: OMP_NUM_THREADS or all cores)\n"
    "  -h, --help        this text\n"
    "\n"
    "environment:\n"
    "  OPENBLAS_CORETYPE  when unset and OpenBLAS picked kernels older than the CPU\n"
    "                     supports, dc re-runs itself once with it set (DC_NO_REEXEC=1\n"
    "                     turns that off)\n"
    "  DC_KERNELS         scalar|avx2|avx512|neon: force dc's elementwise kernels\n";

static void die(const char *fmt, const char *arg)
{
    fprintf(stderr, "dc: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n");
    exit(2);
}

/* Re-executes this program with OPENBLAS_CORETYPE set when OpenBLAS chose
   kernels older than the CPU supports. Once only (DC_REEXEC marks the second
   run), never overriding the user's own setting. */
static void maybe_reexec(char **argv)
{
    dc_blas_info bi;
    if (getenv("DC_NO_REEXEC")) return;
    dc_blas_check(&bi);
    if (!bi.suggest[0]) return;
    if (getenv("DC_REEXEC")) {
        fprintf(stderr, "dc: warning: OpenBLAS still uses the %s kernels on this %s CPU; "
                "sgemm will be slow\n", bi.core, bi.cpu_level);
        return;
    }
    setenv("OPENBLAS_CORETYPE", bi.suggest, 1);
    setenv("DC_REEXEC", "1", 1);
    execv("/proc/self/exe", argv);
    /* no /proc (or exec failed): carry on with the slow kernels, and say so */
    unsetenv("OPENBLAS_CORETYPE");
    fprintf(stderr, "dc: warning: OpenBLAS picked the %s kernels on a CPU that supports %s; "
            "set OPENBLAS_CORETYPE=%s for a faster sgemm\n", bi.core, bi.cpu_level, bi.suggest);
}

static int cmd_blas(void)
{
    dc_blas_info bi;
    dc_blas_check(&bi);
    printf("openblas core: %s\n", bi.core);
    printf("cpu supports:  %s\n", bi.cpu_level);
    printf("OPENBLAS_CORETYPE: %s\n", getenv("OPENBLAS_CORETYPE") ? getenv("OPENBLAS_CORETYPE") : "(unset)");
    if (bi.suggest[0]) printf("advice: set OPENBLAS_CORETYPE=%s\n", bi.suggest);
    if (bi.user_set && bi.better[0])
        printf("note: OPENBLAS_CORETYPE is set in the environment, so dc leaves it; this CPU "
               "could use %s\n", bi.better);
    printf("threads:       %d\n", dc_get_threads());
    return 0;
}

static int cmd_info(int argc, char **argv)
{
    int verbose = 0;
    const char *path = NULL;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "-v") || !strcmp(argv[i], "--verbose")) verbose = 1;
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("usage: dc info [-v] MODEL.dcw\n");
            return 0;
        } else if (argv[i][0] == '-') die("info: unknown option '%s' (see dc info --help)", argv[i]);
        else if (!path) path = argv[i];
        else die("info: one model at a time ('%s' is extra)", argv[i]);
    }
    if (!path) die("%s", "info: which model? usage: dc info [-v] MODEL.dcw");
    dc_model *m;
    dc_error err;
    if (dc_model_load(&m, path, NULL, &err) != DC_OK) {
        fprintf(stderr, "dc: %s\n", err.msg);
        return 1;
    }
    dc_model_print_info(m, stdout, verbose);
    dc_blas_info bi;
    dc_blas_check(&bi);
    printf("runtime:   openblas core %s, cpu %s, %d threads\n", bi.core, bi.cpu_level, dc_get_threads());
    dc_model_free(m);
    return 0;
}

static int cmd_forward(int argc, char **argv)
{
    const char *model = NULL, *outp = NULL, *component = NULL, *inputs[8];
    int n_in = 0, penultimate = 0;
    for (int i = 0; i < argc; i++) {
        if ((!strcmp(argv[i], "-m") || !strcmp(argv[i], "--model")) && i + 1 < argc) model = argv[++i];
        else if ((!strcmp(argv[i], "-o") || !strcmp(argv[i], "--output")) && i + 1 < argc) outp = argv[++i];
        else if (!strcmp(argv[i], "--penultimate")) penultimate = 1;
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("usage: dc forward -m MODEL COMPONENT IN.npy ... -o OUT.npy\n"
                   "  dit X.npy T.npy Y.npy   x [n,C,S,S] f32, t [n] f32, y [n] int -> [n,out_ch,S,S]\n"
                   "  text IDS.npy [--penultimate]\n"
                   "                          token ids [n,77] int -> hidden states [n,77,D]\n");
            return 0;
        } else if (argv[i][0] == '-') die("forward: unknown or incomplete option '%s' (see dc forward --help)", argv[i]);
        else if (!component) component = argv[i];
        else if (n_in < 8) inputs[n_in++] = argv[i];
        else die("forward: too many inputs ('%s')", argv[i]);
    }
    if (!model || !component || !outp) die("%s", "forward: usage: dc forward -m MODEL COMPONENT IN.npy ... -o OUT.npy");
    if (penultimate && strcmp(component, "text")) die("%s", "forward: --penultimate is for the text component");
    if (penultimate) component = "text-penultimate";
    dc_error err;
    dc_model *m = NULL;
    dc_ctx *c = NULL;
    dc_tensor in[8], out = {0};
    int loaded = 0, rc = 1;
    memset(in, 0, sizeof in);
    if (dc_model_load(&m, model, NULL, &err) != DC_OK || dc_ctx_new(&c, m, &err) != DC_OK) goto done;
    for (; loaded < n_in; loaded++)
        if (dc_tensor_load_npy(&in[loaded], inputs[loaded], &err) != DC_OK) goto done;
    if (dc_forward(c, component, in, n_in, &out, &err) != DC_OK) goto done;
    if (dc_tensor_save_npy(&out, outp, &err) != DC_OK) goto done;
    rc = 0;
done:
    if (rc) fprintf(stderr, "dc: %s\n", err.msg);
    for (int i = 0; i < loaded; i++) dc_tensor_free(&in[i]);
    dc_tensor_free(&out);
    dc_ctx_free(c);
    dc_model_free(m);
    return rc;
}

int main(int argc, char **argv)
{
    maybe_reexec(argv);

    /* pull global options out of argv, wherever they stand */
    int n = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-t") || !strcmp(argv[i], "--threads")) {
            if (i + 1 >= argc) die("%s needs a number", argv[i]);
            char *end;
            errno = 0;
            long t = strtol(argv[++i], &end, 10);
            if (*end || errno || t < 1 || t > 1024) die("--threads: '%s' is not a thread count (1..1024)", argv[i]);
            dc_set_threads((int)t);
        } else {
            argv[++n] = argv[i];
        }
    }
    argc = n + 1;

    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        fputs(usage_text, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
        printf("dc %s\n", dc_version());
        return 0;
    }
    if (!strcmp(cmd, "blas")) return cmd_blas();
    if (!strcmp(cmd, "info")) return cmd_info(argc - 2, argv + 2);
    if (!strcmp(cmd, "forward")) return cmd_forward(argc - 2, argv + 2);
    die("unknown command '%s' (see dc --help)", cmd);
    return 2;
}
