/* tests/test_driver.c - the dc command line, run as a user runs it:
   exit codes, messages, and the OpenBLAS re-execution. */
#define _POSIX_C_SOURCE 200809L
#include "test.h"

#include <stdlib.h>
#include <sys/wait.h>

/* Runs `ENV dc ARGS` through the shell; returns the exit status and the
   combined output in out. */
static int run_dc(char *out, size_t cap, const char *env, const char *args)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s '%s' %s 2>&1", env, T.dc, args);
    FILE *f = popen(cmd, "r");
    if (!f) return -1;
    size_t n = fread(out, 1, cap - 1, f);
    out[n] = 0;
    int st = pclose(f);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static char out[65536];

static void driver_should_explain_itself_and_refuse_unknown_input(void)
{
    CHECK(run_dc(out, sizeof out, "", "--help") == 0 && strstr(out, "usage: dc"), "--help: %s", out);
    CHECK(run_dc(out, sizeof out, "", "") == 2 && strstr(out, "usage: dc"), "no args: %s", out);
    CHECK(run_dc(out, sizeof out, "", "frobnicate") == 2 && strstr(out, "unknown command 'frobnicate'"),
          "unknown command: %s", out);
    CHECK(run_dc(out, sizeof out, "", "--threads zero info x") == 2 &&
          strstr(out, "'zero' is not a thread count"), "bad threads: %s", out);
    CHECK(run_dc(out, sizeof out, "", "info --bogus") == 2 && strstr(out, "unknown option '--bogus'"),
          "bad option: %s", out);
    CHECK(run_dc(out, sizeof out, "", "version") == 0 && strstr(out, dc_version()), "version: %s", out);
}

static void info_should_describe_a_model_and_name_a_bad_one(void)
{
    char args[1200];
    snprintf(args, sizeof args, "info -v '%s'", t_path(T.tmp, "test.dcw"));
    CHECK(run_dc(out, sizeof out, "", args) == 0 && strstr(out, "family:    test") &&
          strstr(out, "test.int") && strstr(out, "w.q8") && strstr(out, "openblas core"),
          "info: %s", out);
    snprintf(args, sizeof args, "info '%s'", t_path(T.tmp, "missing.dcw"));
    CHECK(run_dc(out, sizeof out, "", args) == 1 && strstr(out, "missing.dcw: cannot open"),
          "missing: %s", out);
}

static void driver_should_reexec_onto_the_best_openblas_kernels(void)
{
    /* With the variable unset, the driver must end up on a core that is not
       older than this CPU supports (it re-executes itself if needed). */
    int st = run_dc(out, sizeof out, "env -u OPENBLAS_CORETYPE -u DC_REEXEC -u DC_NO_REEXEC", "blas");
    CHECK(st == 0, "dc blas failed: %s", out);
    char core[64] = "", level[64] = "";
    const char *c = strstr(out, "openblas core: "), *l = strstr(out, "cpu supports:  ");
    if (c) sscanf(c + 15, "%63s", core);
    if (l) sscanf(l + 15, "%63s", level);
    printf("  unset OPENBLAS_CORETYPE -> dc runs on core %s (cpu %s)\n", core, level);
    CHECK(core[0] && level[0] && !dc__blas_better_core(core, level),
          "still on core %s with cpu %s:\n%s", core, level, out);
    /* a user's own setting is never overridden */
    st = run_dc(out, sizeof out, "env -u DC_REEXEC OPENBLAS_CORETYPE=Prescott", "blas");
    CHECK(st == 0 && strstr(out, "openblas core: Prescott") && strstr(out, "OPENBLAS_CORETYPE: Prescott"),
          "user setting overridden: %s", out);
}

void suite_driver(void)
{
    RUN(driver_should_explain_itself_and_refuse_unknown_input);
    RUN(info_should_describe_a_model_and_name_a_bad_one);
    RUN(driver_should_reexec_onto_the_best_openblas_kernels);
}
