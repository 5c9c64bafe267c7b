/*
Allowed (query, key) pairs of one attention pattern, counted by the CPU trainer's own allowed()
(through its key lists, pairlist_build): the reference that scripts/analyze_pattern.py's counts are
checked against (test/test_analyzer.sh).

    test/pattern_pairs T W S R d K CAUSAL [GLOBAL ...]      prints the number of allowed pairs

The pattern goes through the trainer's pattern_validate(), so what the trainer refuses is refused
here too. Like test/test_gpt_cpu.c it includes the trainer itself, so it counts with the very code
that trains.
*/
#define TESTING
#include "../train_gpt_cpu.c"

int main(int argc, char** argv) {
    if (argc < 8) { die("usage: pattern_pairs T W S R d K CAUSAL [GLOBAL ...]"); }
    int T = parse_int("T", argv[1], 1);
    AttnPattern p = {parse_int("W", argv[2], 0), parse_int("S", argv[3], 0), parse_int("R", argv[4], 0),
                     parse_int("d", argv[5], 1), parse_int("K", argv[6], 0)};
    ModelPattern mp;
    memset(&mp, 0, sizeof(mp));
    mp.causal = parse_int("CAUSAL", argv[7], 0);
    mp.num_patterns = 1;
    mp.patterns[0] = p;  // layer_pattern[0] = 0 from the memset
    for (int g = 8; g < argc; g++) {
        if (mp.num_globals == MAX_GLOBALS) { die("more than %d global positions", MAX_GLOBALS); }
        mp.globals[mp.num_globals] = parse_int("GLOBAL", argv[g], 0);
        if (mp.globals[mp.num_globals] >= T) { die("GLOBAL %d: beyond T = %d", mp.globals[mp.num_globals], T); }
        mp.num_globals++;
    }
    qsort(mp.globals, mp.num_globals, sizeof(int), compare_ints);
    pattern_validate(&mp, 1, "pattern_pairs");
    PairList pl;
    pairlist_build(&pl, &p, &mp, T);
    printf("%zu\n", pl.num_pairs);
    pairlist_free(&pl);
    return 0;
}
