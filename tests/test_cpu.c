/* tests/test_cpu.c - the OpenBLAS kernel decision (a pure function). */
#include "test.h"

static void blas_check_should_upgrade_old_cores_on_new_cpus(void)
{
    static const struct { const char *core, *cpu, *want; } cases[] = {
        {"Prescott", "avx512", "SkylakeX"},   /* Debian's pick on a new Xeon */
        {"Haswell", "avx512", "SkylakeX"},    /* AVX2 kernels on an AVX-512 EPYC */
        {"Zen", "avx512", "SkylakeX"},
        {"Sandybridge", "avx512", "SkylakeX"},
        {"Prescott", "avx2", "Haswell"},
        {"Nehalem", "avx2", "Haswell"},
        {"SkylakeX", "avx512", NULL},         /* already right */
        {"skylakex", "avx512", NULL},         /* names compare case-insensitively */
        {"Cooperlake", "avx512", NULL},
        {"SapphireRapids", "avx512", NULL},
        {"Haswell", "avx2", NULL},
        {"Zen", "avx2", NULL},
        {"Prescott", "avx", NULL},            /* nothing better to offer */
        {"Prescott", "sse", NULL},
        {"ARMV8", "neon", NULL},
        {"NeoverseN1", "neon", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *got = dc__blas_better_core(cases[i].core, cases[i].cpu);
        CHECK((got == NULL) == (cases[i].want == NULL) && (!got || !strcmp(got, cases[i].want)),
              "core %s on %s: got %s, want %s", cases[i].core, cases[i].cpu, got ? got : "none",
              cases[i].want ? cases[i].want : "none");
    }
    CHECK(dc__blas_better_core(NULL, "avx512") == NULL, "NULL core");
}

static void cpu_level_should_be_one_of_the_known_names(void)
{
    const char *l = dc__cpu_level();
    CHECK(!strcmp(l, "avx512") || !strcmp(l, "avx2") || !strcmp(l, "avx") || !strcmp(l, "sse") ||
          !strcmp(l, "neon") || !strcmp(l, "other"), "level %s", l);
}

void suite_cpu(void)
{
    RUN(blas_check_should_upgrade_old_cores_on_new_cpus);
    RUN(cpu_level_should_be_one_of_the_known_names);
}
