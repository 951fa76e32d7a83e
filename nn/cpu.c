/* nn/cpu.c - what the CPU can do, and whether OpenBLAS uses it.

   Debian's OpenBLAS is built with DYNAMIC_ARCH and picks its kernels from
   cpuid at start-up. On CPUs newer than the build it can fall back to old
   ones (a current Xeon gets "Prescott", SSE3: sgemm 4-6x slower). The user
   can override that with OPENBLAS_CORETYPE, but only before OpenBLAS
   starts; so here we only decide (dc_blas_check, at the end, is the
   public face), and the driver re-executes itself. */
#include "nn.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* OpenBLAS's own query (declared here: not every cblas.h has it) */
char *openblas_get_corename(void);

const char *dc__cpu_level(void)
{
#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("fma") && __builtin_cpu_supports("avx2"))
        return "avx512";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "avx2";
    if (__builtin_cpu_supports("avx")) return "avx";
    return "sse";
#elif defined(__aarch64__)
    return "neon";
#else
    return "other";
#endif
}

static int name_is(const char *a, const char *b)
{
    for (; *a && *b; a++, b++)
        if (tolower((unsigned char)*a) != tolower((unsigned char)*b)) return 0;
    return *a == *b;
}

/* OpenBLAS x86 core names that use AVX-512, and those that use AVX2+FMA. */
static const char *const avx512_cores[] = {"SkylakeX", "Cooperlake", "SapphireRapids", NULL};
static const char *const avx2_cores[] = {"Haswell", "Zen", NULL};

static int in_list(const char *name, const char *const *list)
{
    for (int i = 0; list[i]; i++)
        if (name_is(name, list[i])) return 1;
    return 0;
}

const char *dc__blas_better_core(const char *corename, const char *cpu_level)
{
    if (!corename || !cpu_level) return NULL;
    if (!strcmp(cpu_level, "avx512") && !in_list(corename, avx512_cores)) return "SkylakeX";
    if (!strcmp(cpu_level, "avx2") && !in_list(corename, avx512_cores) &&
        !in_list(corename, avx2_cores))
        return "Haswell";
    return NULL;
}

void dc_blas_check(dc_blas_info *info)
{
    memset(info, 0, sizeof *info);
    const char *core = openblas_get_corename();
    snprintf(info->core, sizeof info->core, "%s", core ? core : "unknown");
    snprintf(info->cpu_level, sizeof info->cpu_level, "%s", dc__cpu_level());
    const char *env = getenv("OPENBLAS_CORETYPE");
    info->user_set = env && *env;
    const char *better = dc__blas_better_core(info->core, info->cpu_level);
    if (better) snprintf(info->better, sizeof info->better, "%s", better);
    if (better && !info->user_set) snprintf(info->suggest, sizeof info->suggest, "%s", better);
    dc__int8_describe(info);
}
