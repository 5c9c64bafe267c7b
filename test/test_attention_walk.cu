/*
The general attention path's walk (dev/cuda/attention_general.cu, version 2) on the CPU: for every
query, spec_next_key must give exactly the keys spec_allowed allows, in ascending order; for every
key, spec_next_query exactly the queries that see it. Version 2's kernels differ from version 1's
only in walking these lists instead of testing every position, so this test is what makes their
results version 1's bits. Version 3's tile-level uses of the walk (the next key tile of a query
block and, for the backward's dK/dV pass, the next query tile of a key block; the 16-position chunks
a row or key needs; the blocks that need no mask; the split of spec_allowed's global clauses) are
checked against the pairs too, as is the pair count the benchmarks divide by, and version 5's masks (a row's allowed keys, or a key's queries,
in a 64-position tile as one 64-bit set) against spec_allowed position by position. It needs no GPU (nvcc builds it, the host runs
it), so CI runs it.

    ./test/test_attention_walk

Patterns: every combination of causal, window, sinks, lookahead, dilation, dilated keys and a few
global sets over T = 1..48, plus random ones at T up to 300 and SPEC §1's examples. The last line
is `attention walk: N passed, M failed`.
*/
#define ATTENTION_GENERAL_NO_MAIN
#include "../dev/cuda/attention_general.cu"

static int passed = 0, failed = 0;

// The walk of one pattern at one T against spec_allowed; on a difference, the first one is printed.
static bool walk_matches(const AttnSpec& p, int T, const char* why) {
    std::vector<int> want, got;
    for (int i = 0; i < T; i++) {
        want.clear(), got.clear();
        for (int j = 0; j < T; j++) if (spec_allowed(p, i, j)) want.push_back(j);
        for (int j = spec_next_key(p, i, -1, T), steps = 0; j < T && steps <= T; j = spec_next_key(p, i, j, T), steps++) got.push_back(j);
        if (got != want) {
            printf("FAIL %s T=%d query %d: spec_next_key walks %zu keys, spec_allowed allows %zu\n", why, T, i, got.size(), want.size());
            return false;
        }
    }
    for (int j = 0; j < T; j++) {
        want.clear(), got.clear();
        for (int i = 0; i < T; i++) if (spec_allowed(p, i, j)) want.push_back(i);
        for (int i = spec_next_query(p, j, -1, T), steps = 0; i < T && steps <= T; i = spec_next_query(p, j, i, T), steps++) got.push_back(i);
        if (got != want) {
            printf("FAIL %s T=%d key %d: spec_next_query walks %zu queries, %zu see it\n", why, T, j, got.size(), want.size());
            return false;
        }
    }
    long long pairs = 0;
    for (int i = 0; i < T; i++) for (int j = 0; j < T; j++) pairs += spec_allowed(p, i, j);
    if (spec_pair_count(p, T) != pairs) {
        printf("FAIL %s T=%d: spec_pair_count says %lld pairs, spec_allowed allows %lld\n", why, T, spec_pair_count(p, T), pairs);
        return false;
    }
    return true;
}

// Version 3's tile-level uses of the walk, on the CPU: (a) the next key tile of a 64-row query block
// is the smallest over its rows of tile(spec_next_key(row, end of tile)), which must be the next
// tile holding an allowed pair; (b) a 16-key chunk is needed by a row iff spec_next_key from just
// before it lands inside it; (c) spec_block_in_band blocks hold only allowed pairs; (d)
// spec_allowed_local plus the two global clauses is spec_allowed; and the same three tile tests
// transposed for the backward's dK/dV pass (query tiles of a key block, query chunks of a key).
static bool tiles_match(const AttnSpec& p, int T, const char* why) {
    const int BQ = 64, BK = 64;
    bool global[512] = {false};
    for (int g = 0; g < p.num_globals; g++) global[p.globals[g]] = true;
    for (int i = 0; i < T; i++)
        for (int j = 0; j < T; j++) {
            bool split = spec_allowed_local(p, i, j) || (global[j] && (!p.causal || j <= i)) || (!p.causal && global[i]);
            if (split != spec_allowed(p, i, j)) {
                printf("FAIL %s T=%d: spec_allowed_local + globals differs from spec_allowed at (%d, %d)\n", why, T, i, j);
                return false;
            }
        }
    for (int q0 = 0; q0 < T; q0 += BQ) {
        int q_last = q0 + BQ - 1 < T - 1 ? q0 + BQ - 1 : T - 1;
        for (int kt = -1; kt * BK < T; kt++) {
            int best = T;
            for (int i = q0; i <= q_last; i++) { int j = spec_next_key(p, i, (kt + 1) * BK - 1, T); if (j < best) best = j; }
            int walked = best < T ? best / BK : -1, want = -1;
            for (int t = kt + 1; t * BK < T && want < 0; t++)
                for (int i = q0; i <= q_last && want < 0; i++)
                    for (int j = t * BK; j < (t + 1) * BK && j < T; j++) if (spec_allowed(p, i, j)) { want = t; break; }
            if (walked != want) {
                printf("FAIL %s T=%d: query block %d after key tile %d: the walk says tile %d, the pairs say %d\n", why, T, q0, kt, walked, want);
                return false;
            }
        }
        for (int w0 = q0; w0 <= q_last; w0 += 16)
            for (int k0 = 0; k0 < T; k0 += BK) {
                for (int a = k0; a < k0 + BK; a += 16)
                    for (int i = w0; i < w0 + 16 && i < T; i++) {
                        const int j = spec_next_key(p, i, a - 1, T);  // gen_chunk_need's test
                        bool walked_need = j < T && j <= a + 15, any = false;
                        for (int j = a; j < a + 16 && j < T; j++) any |= spec_allowed(p, i, j);
                        if (walked_need != any) {
                            printf("FAIL %s T=%d: row %d chunk %d: the walk says %d, the pairs %d\n", why, T, i, a, walked_need, any);
                            return false;
                        }
                    }
                if (spec_block_in_band(p, w0, 16, k0, BK, T))
                    for (int i = w0; i < w0 + 16; i++)
                        for (int j = k0; j < k0 + BK; j++)
                            if (!spec_allowed(p, i, j)) {
                                printf("FAIL %s T=%d: spec_block_in_band(%d, %d) holds a forbidden pair (%d, %d)\n", why, T, w0, k0, i, j);
                                return false;
                            }
            }
    }
    // the backward's transposed walks: the dK/dV pass's next query tile of a 64-key block (query tiles
    // of 64 at D = 64, 32 at D = 128), the 16-query chunks a key needs, and its unmasked blocks
    for (int BQt : {64, 32})
        for (int k0 = 0; k0 < T; k0 += BK) {
            int k_last = k0 + BK - 1 < T - 1 ? k0 + BK - 1 : T - 1;
            for (int qt = -1; qt * BQt < T; qt++) {
                int best = T;
                for (int j = k0; j <= k_last; j++) { int i = spec_next_query(p, j, (qt + 1) * BQt - 1, T); if (i < best) best = i; }
                int walked = best < T ? best / BQt : -1, want = -1;
                for (int t = qt + 1; t * BQt < T && want < 0; t++)
                    for (int j = k0; j <= k_last && want < 0; j++)
                        for (int i = t * BQt; i < (t + 1) * BQt && i < T; i++) if (spec_allowed(p, i, j)) { want = t; break; }
                if (walked != want) {
                    printf("FAIL %s T=%d: key block %d after query tile %d (of %d): the walk says tile %d, the pairs say %d\n",
                           why, T, k0, qt, BQt, walked, want);
                    return false;
                }
            }
            for (int w0 = k0; w0 <= k_last; w0 += 16)
                for (int q0 = 0; q0 < T; q0 += BQt) {
                    for (int a = q0; a < q0 + BQt; a += 16)
                        for (int j = w0; j < w0 + 16 && j < T; j++) {
                            const int i = spec_next_query(p, j, a - 1, T);  // gen_query_chunk_need's test
                            bool walked_need = i < T && i <= a + 15, any = false;
                            for (int i2 = a; i2 < a + 16 && i2 < T; i2++) any |= spec_allowed(p, i2, j);
                            if (walked_need != any) {
                                printf("FAIL %s T=%d: key %d query chunk %d: the walk says %d, the pairs %d\n", why, T, j, a, walked_need, any);
                                return false;
                            }
                        }
                    if (spec_block_in_band(p, q0, BQt, w0, 16, T))
                        for (int i = q0; i < q0 + BQt; i++)
                            for (int j = w0; j < w0 + 16; j++)
                                if (!spec_allowed(p, i, j)) {
                                    printf("FAIL %s T=%d: spec_block_in_band(%d, %d) of the dK/dV pass holds a forbidden pair (%d, %d)\n",
                                           why, T, q0, w0, i, j);
                                    return false;
                                }
                }
        }
    // version 4 (wgmma) asks spec_block_in_band about whole 64 x 64 blocks
    for (int q0 = 0; q0 < T; q0 += 64)
        for (int k0 = 0; k0 < T; k0 += 64)
            if (spec_block_in_band(p, q0, 64, k0, 64, T))
                for (int i = q0; i < q0 + 64; i++)
                    for (int j = k0; j < k0 + 64; j++)
                        if (!spec_allowed(p, i, j)) {
                            printf("FAIL %s T=%d: spec_block_in_band(%d, 64, %d, 64) holds a forbidden pair (%d, %d)\n", why, T, q0, k0, i, j);
                            return false;
                        }
    return true;
}

// Version 5's masks: spec_row_bits(p, i, k0) must be the set of keys k0 + x (x < 64, below T) that
// spec_allowed allows query i, for rows up to T + 2 (a block's rows past T get no key), tiles at
// multiples of 64 and at odd offsets; spec_col_bits the same for the queries of key j.
static bool bits_match(const AttnSpec& p, int T, const char* why) {
    std::vector<int> starts;
    for (int t0 = 0; t0 < T; t0 += 64) { starts.push_back(t0); starts.push_back(t0 + 37); }
    for (int a = 0; a < T + 3; a++)
        for (int t0 : starts) {
            unsigned long long g = 0ull;   // the tile's global positions, as gen_global_bits gives them
            for (int x = 0; x < 64; x++) if (t0 + x < T && spec_is_global(p, t0 + x)) g |= 1ull << x;
            const bool a_global = a < T && spec_is_global(p, a);
            const unsigned long long row = spec_row_bits(p, a, t0, T, g, a_global);
            const unsigned long long col = spec_col_bits(p, a, t0, T, g, a_global);
            for (int x = 0; x < 64; x++) {
                const int b = t0 + x;
                const bool want_row = a < T && b < T && spec_allowed(p, a, b);   // query a, key b
                const bool want_col = a < T && b < T && spec_allowed(p, b, a);   // query b, key a
                const bool got_row = (row >> x) & 1ull, got_col = (col >> x) & 1ull;
                if (got_row != want_row || got_col != want_col) {
                    const bool r = got_row != want_row;
                    printf("FAIL %s T=%d: spec_%s_bits(%d, tile %d) bit %d is %d, spec_allowed says %d\n", why, T,
                           r ? "row" : "col", a, t0, x, (int)(r ? got_row : got_col), (int)(r ? want_row : want_col));
                    return false;
                }
            }
        }
    return true;
}

// dev/cuda/common.h's seeded generator: the random patterns are the same every run
static int rand_below(int n) { return (int)(rng_next() % (uint64_t)n); }

// A random valid pattern at a random T up to 300: lookahead up to max_lookahead (non-causal only), a
// few global positions below T, a dilation only with a window, dilated keys only with a dilation.
static AttnSpec random_spec(int max_lookahead, int* T_out) {
    int T = 1 + rand_below(300);
    std::vector<int> G;
    int count = rand_below(6);
    for (int g = rand_below(T); (int)G.size() < count && g < T; g += 1 + rand_below(T)) G.push_back(g);
    int causal = rand_below(2);
    int W = rand_below(4) == 0 ? 0 : 1 + rand_below(T + 10);
    int S = rand_below(5);
    int R = causal ? 0 : rand_below(max_lookahead);
    int d = W == 0 ? 1 : 1 + rand_below(6);
    int K = d == 1 || rand_below(4) == 0 ? 0 : rand_below(12);
    *T_out = T;
    return spec(causal, W, S, R, d, K, G);
}

// what the trainers accept (train_gpt_cpu.c's pattern checks): lookahead only non-causal, dilated
// keys only with a dilation, dilation only with a window
static bool valid(const AttnSpec& p) {
    if (p.causal && p.lookahead > 0) return false;
    if (p.dilated_keys > 0 && p.dilation == 1) return false;
    if (p.dilation > 1 && p.window == 0) return false;
    return true;
}

// Version 6's split of a dilated pattern: part A (i - j = a d, 0 <= a < gen6_band, 0: any a) and part
// B (gen6_rest: spec_allowed with its skip) must be disjoint and together the pattern's pairs; B's
// walk (the pattern without its dilation) must visit every pair B allows (its masks are exact:
// bits_match checks them against spec_allowed, skip included).
static bool split_matches(const AttnSpec& p, int T, const char* why) {
    const AttnSpec rest = gen6_rest(p);
    const int WA = gen6_band(p);
    std::vector<std::vector<char>> key_walked(T, std::vector<char>(T, 0));   // [i][j]: query i's walk reached key j
    std::vector<std::vector<char>> query_walked(T, std::vector<char>(T, 0)); // [j][i]: key j's walk reached query i
    for (int i = 0; i < T; i++)
        for (int j = spec_next_key(rest, i, -1, T), steps = 0; j < T && steps <= T; j = spec_next_key(rest, i, j, T), steps++) key_walked[i][j] = 1;
    for (int j = 0; j < T; j++)
        for (int i = spec_next_query(rest, j, -1, T), steps = 0; i < T && steps <= T; i = spec_next_query(rest, j, i, T), steps++) query_walked[j][i] = 1;
    for (int i = 0; i < T; i++) {
        for (int j = 0; j < T; j++) {
            const int o = i - j;
            const bool a = o >= 0 && o % p.dilation == 0 && (WA == 0 || o / p.dilation < WA);
            const bool b = spec_allowed(rest, i, j);
            if ((a && b) || ((a || b) != spec_allowed(p, i, j)) || (b && (!key_walked[i][j] || !query_walked[j][i]))) {
                printf("FAIL %s T=%d: version 6's split at (%d, %d): part A %d, part B %d (walked %d / %d), pattern %d\n",
                       why, T, i, j, a, b, key_walked[i][j], query_walked[j][i], spec_allowed(p, i, j));
                return false;
            }
        }
    }
    // the blocks version 5 leaves unmasked (spec_block_in_band) must hold only B's pairs, or A's pairs
    // in them would be counted twice: the forward's 64 x 64 and the warps' 16 x 64 / 64 x 16 blocks
    const int shapes[3][2] = {{64, 64}, {16, 64}, {64, 16}};
    for (const auto& sh : shapes)
        for (int q0 = 0; q0 < T; q0 += sh[0])
            for (int k0 = 0; k0 < T; k0 += sh[1]) {
                if (!spec_block_in_band(rest, q0, sh[0], k0, sh[1], T)) continue;
                for (int i = q0; i < q0 + sh[0]; i++)
                    for (int j = k0; j < k0 + sh[1]; j++)
                        if (!spec_allowed(rest, i, j)) {
                            printf("FAIL %s T=%d: block (%d, %d) of %dx%d needs no mask, but part B does not allow (%d, %d)\n",
                                   why, T, q0, k0, sh[0], sh[1], i, j);
                            return false;
                        }
            }
    return bits_match(rest, T, why);
}

// Version 7's split of a pattern with global positions: part 1 (gen7_band, the pattern without its
// globals) must lie inside the pattern and part 2 (gen7_part2) be the rest, disjoint from it; a
// narrow row's part 2 must hold only global keys, each reached by exactly one slot that counts
// (gen7_slot: the narrow kernels' enumeration), and a wide row's part 2 every key part 1 leaves
// (the wide kernels' formula).
static bool globals_split_matches(const AttnSpec& p, int T, const char* why) {
    const AttnSpec p0 = gen7_band(p);
    for (int i = 0; i < T; i++) {
        for (int j = 0; j < T; j++) {
            const bool a = spec_allowed(p, i, j), a0 = spec_allowed(p0, i, j), b = gen7_part2(p, p0, i, j);
            bool ok = !(a0 && b) && (a0 || b) == a;
            if (gen7_wide(p, i)) {
                ok = ok && b == !a0;
            } else {
                int reached = 0;
                for (int g = 0; g < p.num_globals; g++)
                    reached += gen7_slot(p, g, T) && p.globals[g] == j && gen7_part2(p, p0, i, j);
                ok = ok && reached == (b ? 1 : 0);
            }
            if (!ok) {
                printf("FAIL %s T=%d: version 7's split at (%d, %d): pattern %d, part 1 %d, part 2 %d, wide row %d\n",
                       why, T, i, j, a, a0, b, gen7_wide(p, i));
                return false;
            }
        }
    }
    return true;
}

int main(void) {
    int patterns = 0, sweep_bad = 0;
    // every combination over small T
    const int windows[] = {0, 1, 2, 3, 5, 8, 50}, sinks[] = {0, 1, 3}, looks[] = {0, 1, 4}, dils[] = {1, 2, 3, 4}, keys[] = {0, 1, 3};
    const std::vector<std::vector<int>> global_sets = {{}, {0}, {5}, {2, 9, 30}};
    for (int causal = 0; causal <= 1; causal++)
    for (int W : windows) for (int S : sinks) for (int R : looks) for (int d : dils) for (int K : keys)
    for (const auto& G : global_sets) {
        AttnSpec p = spec(causal, W, S, R, d, K, G);
        if (!valid(p)) continue;
        bool ok = true;
        for (int T = 1; T <= 48 && ok; T += (T < 12 ? 1 : 7)) {
            AttnSpec q = p;  // global positions below T only, as the trainers require
            q.num_globals = 0;
            for (int g : G) if (g < T) q.globals[q.num_globals++] = g;
            char why[160];
            snprintf(why, sizeof(why), "causal %d W %d S %d R %d d %d K %d, %d globals", causal, W, S, R, d, K, q.num_globals);
            ok = walk_matches(q, T, why) && bits_match(q, T, why);
        }
        patterns++;
        if (!ok) sweep_bad++;
    }
    // the sweep counts as one check (its failures print themselves)
    printf("%s every combination of the pattern's fields: %d families over T = 1..48\n", sweep_bad ? "FAIL" : "PASS", patterns);
    if (sweep_bad) failed++; else passed++;
    // random patterns at larger T: the walks, then version 3's tiles over several query and key tiles
    int random_ok = 0, random_bad = 0, tiles_ok = 0, tiles_bad = 0;
    for (int t = 0; t < 400; t++) {
        int T;
        AttnSpec p = random_spec(20, &T);
        if (walk_matches(p, T, "random")) random_ok++; else random_bad++;
    }
    int bits_ok = 0, bits_bad = 0;
    for (int t = 0; t < 150; t++) {
        int T;
        AttnSpec p = random_spec(80, &T);
        if (tiles_match(p, T, "tiles, random")) tiles_ok++; else tiles_bad++;
        if (bits_match(p, T, "bits, random")) bits_ok++; else bits_bad++;
    }
    passed += random_bad == 0;
    failed += random_bad > 0;
    printf("%s 400 random patterns at T up to 300 (%d walked as spec_allowed says)\n", random_bad ? "FAIL" : "PASS", random_ok);
    passed += tiles_bad == 0;
    failed += tiles_bad > 0;
    printf("%s 150 random patterns: version 3's tile walks (keys of a query block, queries of a key block), chunk needs, unmasked blocks and split globals (%d as the pairs say)\n",
           tiles_bad ? "FAIL" : "PASS", tiles_ok);
    passed += bits_bad == 0;
    failed += bits_bad > 0;
    printf("%s the same 150 patterns: version 5's row and column sets equal spec_allowed (%d as the pairs say)\n",
           bits_bad ? "FAIL" : "PASS", bits_ok);
    // version 6's split on every dilated pattern of the sweep's fields, then random ones
    int split_ok = 0, split_bad = 0;
    for (int causal = 0; causal <= 1; causal++)
    for (int W : windows) for (int S : sinks) for (int d : {2, 3, 4, 8, 64, 70}) for (int K : keys)
    for (const auto& G : global_sets) {
        AttnSpec p = spec(causal, W, S, causal ? 0 : 2, d, K, G);
        if (!valid(p) || W == 0) continue;
        bool ok = true;
        for (int T = 1; T <= 48 && ok; T += (T < 12 ? 1 : 7)) {
            AttnSpec q = p;
            q.num_globals = 0;
            for (int g : G) if (g < T) q.globals[q.num_globals++] = g;
            ok = split_matches(q, T, "split, sweep");
        }
        if (ok) split_ok++; else split_bad++;
    }
    for (int t = 0; t < 300; t++) {
        int T;
        AttnSpec p = random_spec(80, &T);
        if (p.dilation == 1 || p.window == 0) continue;
        if (split_matches(p, T, "split, random")) split_ok++; else split_bad++;
    }
    {   // seeds/001's pattern and the benchmarks' dilated band, across several tiles
        if (split_matches(spec(1, 96, 0, 0, 4, 0, {}), 500, "split, seeds/001")) split_ok++; else split_bad++;
        if (split_matches(spec(1, 256, 4, 0, 4, 64, {}), 700, "split, W=256 S=4 d=4 K=64")) split_ok++; else split_bad++;
        if (split_matches(spec(1, 20, 0, 0, 6, 7, {}), 400, "split, W=20 d=6 K=7")) split_ok++; else split_bad++;
        if (split_matches(spec(1, 8, 1, 0, 64, 3, {}), 400, "split, W=8 S=1 d=64 K=3")) split_ok++; else split_bad++;
        if (split_matches(spec(0, 7, 2, 9, 100, 0, {150}), 400, "split, non-causal W=7 R=9 d=100, a global")) split_ok++; else split_bad++;
        // blocks that lie inside the band: the window must cover whole 64 x 64 blocks
        if (split_matches(spec(1, 300, 0, 0, 4, 10, {}), 400, "split, W=300 d=4 K=10")) split_ok++; else split_bad++;
    }
    passed += split_bad == 0;
    failed += split_bad > 0;
    printf("%s version 6's split of dilated patterns: residue bands and the rest disjoint, together the pattern; the rest's walk and masks cover it (%d patterns)\n",
           split_bad ? "FAIL" : "PASS", split_ok);
    // version 7's split of patterns with global positions: the sweep's, random ones, and slots that
    // repeat a position or lie past T (each position counted once, those past T not at all)
    int gsplit_ok = 0, gsplit_bad = 0;
    for (int causal = 0; causal <= 1; causal++)
    for (int W : windows) for (int S : sinks) for (int R : looks)
    for (const auto& G : global_sets) {
        AttnSpec p = spec(causal, W, S, R, 1, 0, G);
        if (!valid(p) || G.empty()) continue;
        bool ok = true;
        for (int T = 1; T <= 48 && ok; T += (T < 12 ? 1 : 7)) {
            AttnSpec q = p;
            q.num_globals = 0;
            for (int g : G) if (g < T) q.globals[q.num_globals++] = g;
            ok = globals_split_matches(q, T, "globals split, sweep");
        }
        if (ok) gsplit_ok++; else gsplit_bad++;
    }
    for (int t = 0; t < 300; t++) {
        int T;
        AttnSpec p = random_spec(80, &T);
        p.dilation = 1;
        p.dilated_keys = 0;
        if (p.num_globals == 0) continue;
        if (globals_split_matches(p, T, "globals split, random")) gsplit_ok++; else gsplit_bad++;
    }
    if (globals_split_matches(spec(0, 8, 1, 3, 1, 0, {5, 5, 30, 9, 200}), 60, "globals split, a repeated slot and one past T")) gsplit_ok++; else gsplit_bad++;
    if (globals_split_matches(spec(1, 4, 2, 0, 1, 0, {5, 5, 30, 9, 200}), 60, "globals split, causal, a repeated slot and one past T")) gsplit_ok++; else gsplit_bad++;
    if (globals_split_matches(spec(0, 64, 0, 64, 1, 0, {0, 100, 200}), 300, "globals split, seeds/002's Longformer band")) gsplit_ok++; else gsplit_bad++;
    passed += gsplit_bad == 0;
    failed += gsplit_bad > 0;
    printf("%s version 7's split of patterns with global positions: the band and the globals' pairs disjoint, together the pattern; narrow rows' slots and wide rows' keys as the kernels take them (%d patterns)\n",
           gsplit_bad ? "FAIL" : "PASS", gsplit_ok);
    // SPEC §1's examples and the seeds' own patterns
    struct { AttnSpec p; int T; const char* why; } named[] = {
        {spec(1, 3, 0, 0, 1, 0, {}), 6, "SPEC §1: W=3, T=6, causal"},
        {spec(0, 3, 0, 0, 1, 0, {0}), 8, "SPEC §1: W=3, T=8, non-causal, G={0}"},
        {spec(1, 6, 0, 0, 3, 3, {}), 40, "SPEC §1: W=6, d=3, K=3"},
        {spec(1, 96, 0, 0, 4, 0, {}), 500, "seeds/001: W=96, d=4, K=all"},
        {spec(0, 64, 0, 64, 1, 0, {0, 100, 200}), 300, "seeds/002: Longformer band, 3 globals"},
        // the stride sets: d dividing 64 (a constant pattern), d >= 64 (one key a tile), any other d
        {spec(1, 8, 0, 0, 32, 0, {}), 400, "W=8, d=32 to the start"},
        {spec(1, 5, 1, 0, 64, 3, {}), 400, "W=5, S=1, d=64, K=3"},
        {spec(0, 7, 2, 9, 100, 0, {150}), 400, "non-causal W=7, R=9, d=100, a global"},
        {spec(1, 20, 0, 0, 6, 7, {}), 400, "W=20, d=6, K=7"},
    };
    for (auto& n : named) {
        bool ok = walk_matches(n.p, n.T, n.why) && bits_match(n.p, n.T, n.why);
        printf("%s %s\n", ok ? "PASS" : "FAIL", n.why);
        if (ok) passed++; else failed++;
    }
    printf("attention walk: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
