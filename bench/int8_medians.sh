#!/bin/sh
# bench/int8_medians.sh FILE - medians of the bench lines in FILE (lines of
# bench/sd_bench and bench/dit_bench, several rounds of each), and the int8
# speedup: per model file, size and batch, f32 compute's median seconds per
# sample over int8's (the name with ":int8"). Prints nothing for one round.
awk '
function median(list,    n, a, i, j, t) {
    n = split(list, a, " ")
    for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] + 0 > a[j] + 0; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
$1 == "dc" {
    key = ""; sps = ""; rss = ""
    for (i = 2; i <= NF; i++) {
        if ($(i + 1) ~ /^s\/(eval|forward)$/) break
        key = key (key == "" ? "" : " ") $i
    }
    for (i = 2; i < NF; i++) {
        if ($(i + 1) == "s/sample") sps = $i
        if ($i == "RSS") rss = $(i + 1)
    }
    if (sps == "") next
    if (!(key in seen)) { seen[key] = 1; order[++nk] = key }
    times[key] = times[key] " " sps; mems[key] = mems[key] " " rss; count[key]++
}
END {
    rounds = 0
    for (k in count) if (count[k] > rounds) rounds = count[k]
    if (rounds < 2) exit
    for (i = 1; i <= nk; i++) {
        k = order[i]; med[k] = median(times[k])
        printf "median %-48s %8.3f s/sample  peak RSS %6.0f MB  (%d rounds: %s )\n", k, med[k], median(mems[k]), count[k], times[k]
    }
    for (i = 1; i <= nk; i++) {
        k = order[i]
        if (k !~ /:int8 /) continue
        f = k; sub(/:int8 /, " ", f)
        if (f in med) printf "speedup %-47s int8 compute %.2fx faster per sample than f32 compute (medians)\n", f, med[f] / med[k]
    }
}' "$1"
