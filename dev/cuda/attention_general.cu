/*
Attention for every pattern of SPEC §1 on the GPU: window, sinks, lookahead, global positions,
dilation, causal and non-causal. The band kernels of attention_forward.cu / attention_backward.cu
cover causal window + sinks fast; this file is the correct-first path for the rest (the masked tile
path the issue allows), used by train_gpt_window for layers whose pattern is not a plain band.

Layouts as in the other dev/cuda programs: qkv (B, T, 3, NH, D) bf16, out (B, T, NH, D) bf16,
lse (B, NH, T) float32, dout like out, dqkv like qkv; D up to 128, any multiple of 8.

version 1: one warp per query row (forward and dQ) or key row (dK, dV); the lanes split the head
dimension, the warp walks every key (query) in order and skips what allowed() forbids. Work is
O(T^2) per head whatever the pattern, memory O(T): right for small and medium T, slow for long
ones. Every sum runs in a fixed order, so results are the same bits run to run.

version 2: the same warps, walking only the allowed keys (queries): spec_next_key / spec_next_query
step from one allowed position to the next through the pattern's parts (band, lookahead, sinks,
global positions, the dilated progression) in O(parts). Work follows the allowed pairs, so at a
fixed window the time per token no longer grows with T. The keys come in the same ascending order
as version 1's, so the results are version 1's bits (main checks that too). Both are one set of
kernels (attn-general-warp) with the way to the next position as a template parameter.
Predicted: at T = 4096, W = 256 + 16 dilated keys + 4 sinks, a row walks 276 keys instead of up to
4096: about 8x less forward work on average (rows average ~2048 keys in v1). Measured (H200,
dev/cuda/results/h200_general_v4.log): v1's bits in every case; flat in T from T = 4096 on for the
dilated band, 4-6x v1 at T = 4096, scalar (a few TFLOP/s).

version 3: the forward on tensor cores, block-sparse: forward v7's block (64 query rows, 4 warps,
mma.sync, double-buffered cp.async tiles of 64 keys, attention_forward.cu's tile functions) visiting
only the key tiles that hold an allowed pair. The next tile is the smallest over the block's rows of
tile(spec_next_key(row, end of this tile)), one row per thread and a block-wide minimum: exact, so
work follows the allowed pairs at tile granularity (a dilated band's tiles are 1/d full: they are
visited and masked, as FlexAttention's partial blocks are). Each warp skips the 16-key chunks none of
its rows needs; tiles that lie inside every row's band (or band + lookahead) need no mask, the others
are masked with spec_allowed, whose global-key test comes from a 64-bit mask of the tile's global
keys built once per tile. The backward is backward v9's two passes on attention_backward.cu's tile
halves (dK/dV per 64-key tile, dQ per 64-query tile on a second stream), each walking only the tiles
with an allowed pair: the dQ pass as the forward, the dK/dV pass the transposed walk (the next
query tile is the smallest over the block's keys of tile(spec_next_query(key, end of this tile))).
The mask sets the scores to -inf before the exponentials, so P and dS are 0 there. The long runs of
global and sink keys are not split (v6's split of the band kernels), so on a Longformer pattern the
global key tiles' blocks walk all of T.
Predicted: forward within 1.5x of the band kernel v7 on the same number of visited tiles (the walk
adds two block barriers a tile), i.e. some 100-200 TFLOP/s on allowed pairs where v2 reaches a few;
backward within 1.5x of v9's time per visited tile, so forward+backward 3-4x the forward's time.
Measured: 12-42x version 2 forward, but 3-4x below the prediction per visited tile (~30 TFLOP/s
forward on the dilated band); notes.md says where the time goes.

version 4: the forward on Hopper's wgmma (sm_90a): forward v10's block (64 query rows, one
warpgroup, Q, K and V by TMA into two mbarrier'd K / V buffers, the tiles' products as wgmma, the
softmax on the accumulator fragments) walking version 3's key tiles; the mask is gen_mask_wg on
the wgmma layout before forward v8's online softmax step (fwd8_online_softmax, split off for
this). 113 registers at D = 64 (4 blocks per SM; v10 runs 5 at 96), 165 at D = 128, no spills.
The backward is backward v11's two passes (wgmma, TMA for Q, dO, K, V, cp.async for lse and D_i,
a head's blocks side by side) walking version 3's tiles, the mask on the wgmma layout before the
exponentials: dK/dV 168 / 249 registers (D = 64 / 128), dQ 162 / 192 (3 blocks per SM at D = 64:
it spills at v10's 4), no spills. Other GPUs and head sizes run version 3 (or 2).
Predicted: the band kernels gained 1.23-1.40x from forward v7 (mma.sync) to v8 (wgmma) and another
1.3-1.4x to v10 (one warpgroup a block, TMA; notes.md, Rounds 3 to 6): version 4 at ~1.5x version
3's forward on the same tiles (less than the band kernels' 1.7-1.9x: 4 blocks per SM, not 5, and
the walk's barriers every tile); the backward ~1.4x version 3's (backward v10 ran 1.42-1.83x v9).
Measured: 1.2-1.45x version 3 forward; 42-45 TFLOP/s forward on W = 256 + 64 dilated keys, 0.39x / 0.44x
FlexAttention there, 0.24x on seeds/001's band, 2.5-8x FlexAttention on the Longformer pattern
(bench/attention_general_vs_flex_h200_v4.md).

version 5: version 4's kernels with the masks as 64-bit sets: for each of a thread's two rows
(keys in the dK/dV pass) the allowed keys (queries) of the tile are built once from the pattern's
parts (band, lookahead and sinks as bit ranges, the dilated keys as a periodic set, ~0ull / (2^d - 1)
shifted, where d divides 64, ANDed with their range, the global positions from the tile's global
bits), then each score costs one bit test, where versions 3 and 4 run spec_allowed on each of a
thread's 32 scores (~20 instructions each: twice the softmax's work per tile, on every tile of a
dilated band). test/test_attention_walk.cu proves the sets equal spec_allowed position by position
on the CPU. ptxas: forward 106 / 140 registers (D = 64 / 128; v4 113 / 165), dK/dV 168 / 234, dQ
142 / 174, no spills. Predicted: 1.5-2x version 4 on the dilated bands, where every visited tile is
masked (~950 instructions a warp and tile down to ~460); little on the Longformer pattern, whose
time is in the near-empty global tiles and the unsplit global rows. Measured (H100, one run,
results/h100_general_v5.log): 1.9-2.0x version 4 on W = 256 + 64 dilated keys (forward 83-93,
forward+backward 58-89 TFLOP/s) and, against the prediction, 2.5-2.6x on the Longformer pattern:
its masked tiles were as much of its time as its empty ones. Against FlexAttention
(bench/attention_general_vs_flex.md): 0.51-0.60x on seeds/001's band, 0.73-0.85x on the dilated
band, 7-22x on the Longformer pattern. What the trainers run for every pattern the band kernels do
not take.

version 6: a dilated pattern split in two parts merged by log-sum-exp. Part A, the keys of the
query's own residue mod d up to the dilated reach, is a causal band of ceil(W/d) + K (dense causal
when K = 0) in each residue's subsequence: q, k, v are gathered into B d sequences of ceil(T/d) and
run on the band kernels (forward v11, backward v13) at their rate, where version 5 visits the
dilated keys' tiles 1/d full. Part B, the rest (band, sinks, lookahead, globals) minus A's pairs,
runs on version 5's kernels, whose walk of the pattern without its dilation visits only the band's
tiles; the masks leave A's pairs out (AttnSpec's skip_stride / skip_span). The backward runs both
parts' backwards with the merged out and lse and adds A's gradient into B's.
test/test_attention_walk.cu proves on the CPU that the parts are disjoint, together the pattern,
and that B's walk covers B. Predicted (notes.md): on seeds/001's pattern at T = 4096, part A holds
2.1M of a head's 2.4M pairs at the band kernels' ~400 TFLOP/s: ~0.35 ms forward where version 5
takes ~1.6 ms (~2.5x FlexAttention); the same on W = 256 + 64 keys. Measured (H100, one run,
bench/attention_general_vs_flex.md): seeds/001's pattern 3.3x version 5 at T = 4096 (1.8x / 1.9x
FlexAttention forward / forward+backward, short of the 2.5x predicted) and 7.2x at 16384 (4.0x /
3.9x); but W = 256 + 64 keys 0.69x version 5: its residue bands are short (128), part B still walks
the 256-wide band with every tile masked, and the gathers and merge cost ~27 ns a token. So the
programs take the split only where the dilated keys reach 448 or more back (gen6_pays) and version
5 elsewhere: "v6" below is that dispatch, "v6 split" the split wherever it can run.

version 7: a pattern with global positions (and no dilation) split in two and merged by log-sum-exp.
Version 5 visits, for every 64-query tile, each key tile that holds a global key (one column of 64
used), and each tile holding a non-causal global query walks all of T on a single block: on the
Longformer pattern (W = R = 256, 16 globals) 0.25 tile visits a token at T = 1024 and 0.63 at 16384,
measured 73 -> 216 ns a token forward+backward (sixth session). Part 1 is the pattern without its globals, a band
(+ lookahead, sinks): on the band kernels (forward v11, backward v13) when causal, on version 5's
kernels otherwise, which then visit only the band's tiles (~0.15 a token at any T). Part 2 is the
pairs the globals add, G T a head each way, on CUDA-core kernels over tiles of 64 or 128 rows or
keys staged in shared memory: narrow rows (all but the non-causal global queries) add their global keys
outside the band, a warp a row; wide rows (non-causal global queries) add every key outside their
band, a partial per key tile merged in a fixed order; the backward adds part 2's gradients after
part 1's (partial sums per tile reduced in order: deterministic). test/test_attention_walk.cu proves
the split on the CPU (parts disjoint, together the pattern, the narrow rows' slots and the wide
rows' keys as the kernels take them; repeated slots counted once).
Predicted (Longformer, 12 x 64, B T = 32768): part 1 ~43 ns a token forward+backward, part 2 ~15-20
ns: ~60-65 ns flat in T. Measured (H100, bench/attention_general_vs_flex_longformer_h100_v7.log; the kernels as here, the
dispatch rule below added after the run):
flat as intended, 103 / 108 / 111 / 114 ns at T = 1024 / 2048 / 4096 / 16384 where version 5 takes
74 / 124 / 161 / 219 (FlexAttention 2.8x / 6.3x / 10.5x / 14.4x slower), but part 2 takes 4-6x
its prediction: ncu puts ~80% of the time in it, three quarters of that in the narrow rows' kernels
(a row per warp, lanes over at most G keys, and each (row, slot) test scanning the G globals;
notes.md). So "v7 split" is the split
wherever it can run, and "v7", the programs' dispatch, takes it for non-causal patterns from
T = 2048 on (gen7_pays), where it wins; version 6 elsewhere.

./attention_general              checks every version against a float64 CPU reference on fresh inputs, then times
./attention_general --check-only the checks only
make build/libattention_general.so (top-level Makefile) builds the versions as a library for
scripts/attention_general_vs_flex.py (ATTENTION_GENERAL_LIBRARY: gen_forward / gen_backward)
*/
// forward v7's tile functions (fwd6_qk, fwd_softmax_pv, load_q_frags, fwd_epilogue, load_rows_async)
// and backward v9's (bwd8_phase1, dkdv8_products, dq8_products, stage_acc16, store_rows16, launch_dot)
#define ATTENTION_FORWARD_NO_MAIN
#include "attention_forward.cu"
#define ATTENTION_BACKWARD_NO_MAIN
#include "attention_backward.cu"

// @copy-begin attn-general-spec
// ----------------------------------------------------------------------------
// the pattern on the device (SPEC §1; spec_allowed, in version 1's block, is train_gpt_cpu.c's
// allowed() rule by rule) and the warp helpers of versions 1 and 2

#define ATTN_MAX_GLOBALS 64
struct AttnSpec {
    int causal, window, sinks, lookahead, dilation, dilated_keys, num_globals;
    // version 6's second part leaves out the pairs its first part (the band kernels) takes: those with
    // i - j a multiple of skip_stride in [0, skip_span) (skip_span 0: any). skip_stride 0: none. Only
    // spec_allowed and version 5's bit sets honour it (the walk stays a superset, the masks exact).
    int skip_stride, skip_span;
    int globals[ATTN_MAX_GLOBALS];
};

__host__ __device__ inline bool spec_skipped(const AttnSpec& p, int i, int j) {
    const int o = i - j;
    return p.skip_stride > 1 && o >= 0 && o % p.skip_stride == 0 && (p.skip_span == 0 || o < p.skip_span);
}

__host__ __device__ inline bool spec_is_global(const AttnSpec& p, int pos) {
    for (int g = 0; g < p.num_globals; g++) { if (p.globals[g] == pos) return true; }
    return false;
}

__device__ inline float general_warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffff, v, o);
    return v;
}

// lane l holds dims l, l + 32, l + 64, l + 96 (those below D)
#define GEN_DPL 4
// @copy-end attn-general-spec

// @copy-begin attn-general-v1
// ----------------------------------------------------------------------------
// version 1: one warp per query (key) row, every key (query) tested with spec_allowed (the kernels
// are version 2's, attn-general-warp, run without the walk)

// SPEC §1's allowed(i, j), rule by rule (version 1 tests it on every pair; the later versions walk
// the allowed positions instead, and the CPU reference and test/test_attention_walk.cu use it)
__host__ __device__ inline bool spec_allowed(const AttnSpec& p, int i, int j) {
    if (p.causal && j > i) return false;
    if (spec_skipped(p, i, j)) return false;
    int o = i - j;
    if (o >= 0 && (p.window == 0 || o < p.window)) return true;
    if (!p.causal && o < 0 && -o <= p.lookahead) return true;
    if (j < p.sinks) return true;
    if (!p.causal && i < p.sinks) return true;
    if (spec_is_global(p, j)) return true;
    if (!p.causal && spec_is_global(p, i)) return true;
    if (p.dilation > 1 && p.window > 0 && o >= p.window && o % p.dilation == 0 &&
        (p.dilated_keys == 0 || o < p.window + p.dilated_keys * p.dilation)) return true;
    return false;
}
// @copy-end attn-general-v1

// @copy-begin attn-general-walk
// ----------------------------------------------------------------------------
// the allowed positions one after another: the smallest allowed key after j for query i, and the
// smallest query after i that sees key j, or T when there is none. Each part of spec_allowed gives
// its own next position; the smallest of them is the next allowed one (parts may overlap).

__host__ __device__ inline int walk_min(int a, int b) { return a < b ? a : b; }

// The smallest allowed key j' > j of query i (j = -1 for the first), below T (causal: at most i).
__host__ __device__ inline int spec_next_key(const AttnSpec& p, int i, int j, int T) {
    int end = p.causal ? i + 1 : T;  // keys j' < end
    int from = j + 1;
    if (from >= end) return T;
    if (!p.causal && (i < p.sinks || spec_is_global(p, i))) return from;  // this query sees every key
    int best = end;
    // band: i - W < j' <= i (W = 0: every j' <= i)
    int band_lo = p.window > 0 ? i - p.window + 1 : 0;
    int c = from > band_lo ? from : band_lo;
    if (c <= i) best = walk_min(best, c);
    // lookahead: i < j' <= i + R
    if (!p.causal && p.lookahead > 0) {
        c = from > i + 1 ? from : i + 1;
        if ((long long)c <= (long long)i + p.lookahead) best = walk_min(best, c);
    }
    // sinks: j' < S
    if (from < p.sinks) best = walk_min(best, from);
    // global keys
    for (int g = 0; g < p.num_globals; g++) {
        if (p.globals[g] >= from) best = walk_min(best, p.globals[g]);
    }
    // dilated: offsets o = i - j' >= W, multiples of d, below W + K*d (K = 0: no bound); the next key
    // is the largest such offset below i - j
    if (p.dilation > 1 && p.window > 0) {
        long long o_max = (long long)i - from;  // j' >= from
        if (p.dilated_keys > 0) {
            long long limit = (long long)p.window + (long long)p.dilated_keys * p.dilation - 1;
            if (limit < o_max) o_max = limit;
        }
        if (o_max >= p.window) {
            long long o = o_max / p.dilation * p.dilation;
            if (o >= p.window) best = walk_min(best, (int)(i - o));
        }
    }
    return best < end ? best : T;
}

// The smallest query i' > i (i = -1 for the first), below T, for which key j is allowed.
__host__ __device__ inline int spec_next_query(const AttnSpec& p, int j, int i, int T) {
    int from = i + 1;
    if (p.causal && from < j) from = j;  // causal: i' >= j
    if (from >= T) return T;
    if (j < p.sinks || spec_is_global(p, j)) return from;  // every query sees this key
    int best = T;
    // band: j <= i' < j + W (W = 0: every i' >= j)
    int c = from > j ? from : j;
    if (p.window == 0 || (long long)c < (long long)j + p.window) best = walk_min(best, c);
    // lookahead: j - R <= i' < j
    if (!p.causal && p.lookahead > 0) {
        int lo = j - p.lookahead;
        c = from > lo ? from : lo;
        if (c < j) best = walk_min(best, c);
    }
    // non-causal: the first S queries and the global ones see every key
    if (!p.causal) {
        if (from < p.sinks) best = walk_min(best, from);
        for (int g = 0; g < p.num_globals; g++) {
            if (p.globals[g] >= from) best = walk_min(best, p.globals[g]);
        }
    }
    // dilated: i' = j + o, o >= W a multiple of d below W + K*d: the smallest such o with j + o >= from
    if (p.dilation > 1 && p.window > 0) {
        long long o_min = (long long)from - j;
        if (o_min < p.window) o_min = p.window;
        long long o = (o_min + p.dilation - 1) / p.dilation * p.dilation;
        bool below = p.dilated_keys == 0 || o < (long long)p.window + (long long)p.dilated_keys * p.dilation;
        if (below && (long long)j + o < T) best = walk_min(best, (int)(j + o));
    }
    return best;
}
// @copy-end attn-general-walk

// @copy-begin attn-general-warp
// ----------------------------------------------------------------------------
// versions 1 and 2: one warp per query (key) row, the lanes splitting the head dimension. WALK =
// false (version 1) tests every key (query) with spec_allowed; WALK = true (version 2) steps from
// one allowed position to the next with the walk. Both visit the same positions in the same
// ascending order through the same arithmetic, so version 2's results are version 1's bits.

// the smallest allowed key of query i after key j (j = -1 for the first), or T when there is none
template<bool WALK>
__device__ __forceinline__ int gen_key_after(const AttnSpec& p, int i, int j, int T) {
    if constexpr (WALK) {
        return spec_next_key(p, i, j, T);
    } else {
        const int end = p.causal ? i + 1 : T;
        for (j++; j < end; j++) if (spec_allowed(p, i, j)) return j;
        return T;
    }
}
// the smallest query after query i (i = -1 for the first) that sees key j, or T when there is none
template<bool WALK>
__device__ __forceinline__ int gen_query_after(const AttnSpec& p, int j, int i, int T) {
    if constexpr (WALK) {
        return spec_next_query(p, j, i, T);
    } else {
        for (i = (p.causal && i + 1 < j) ? j : i + 1; i < T; i++) if (spec_allowed(p, i, j)) return i;
        return T;
    }
}

template<bool WALK>
__global__ void attention_general_forward_kernel(bf16* out, float* lse, const bf16* qkv, int B, int T, int NH, int D,
                                                 AttnSpec p) {
    int warp = (blockIdx.x * blockDim.x + threadIdx.x) / 32, lane = threadIdx.x % 32;
    if (warp >= B * NH * T) return;
    int i = warp % T, h = (warp / T) % NH, b = warp / (T * NH);
    size_t C = (size_t)NH * D, row3 = 3 * C;
    const bf16* q = qkv + ((size_t)b * T + i) * row3 + (size_t)h * D;
    float scale = rsqrtf((float)D);
    float qd[GEN_DPL], o[GEN_DPL];
    for (int k = 0; k < GEN_DPL; k++) {
        int d = lane + 32 * k;
        qd[k] = d < D ? __bfloat162float(q[d]) * scale : 0.0f;
        o[k] = 0.0f;
    }
    float m = -INFINITY, l = 0.0f;
    for (int j = gen_key_after<WALK>(p, i, -1, T); j < T; j = gen_key_after<WALK>(p, i, j, T)) {
        const bf16* kj = qkv + ((size_t)b * T + j) * row3 + C + (size_t)h * D;
        const bf16* vj = kj + C;
        float s = 0.0f;
        for (int k = 0; k < GEN_DPL; k++) { int d = lane + 32 * k; if (d < D) s += qd[k] * __bfloat162float(kj[d]); }
        s = general_warp_sum(s);
        float nm = fmaxf(m, s);
        float corr = expf(m - nm), e = expf(s - nm);  // m = -inf at the first key: corr = 0
        l = l * corr + e;
        for (int k = 0; k < GEN_DPL; k++) { int d = lane + 32 * k; if (d < D) o[k] = o[k] * corr + e * __bfloat162float(vj[d]); }
        m = nm;
    }
    bf16* orow = out + ((size_t)b * T + i) * C + (size_t)h * D;
    float inv = l > 0.0f ? 1.0f / l : 0.0f;
    for (int k = 0; k < GEN_DPL; k++) { int d = lane + 32 * k; if (d < D) orow[d] = __float2bfloat16(o[k] * inv); }
    if (lane == 0) lse[((size_t)b * NH + h) * T + i] = l > 0.0f ? m + logf(l) : -INFINITY;
}

template<bool WALK>
__global__ void attention_general_dq_kernel(bf16* dqkv, float* Dsum, const bf16* qkv, const bf16* out, const bf16* dout,
                                            const float* lse, int B, int T, int NH, int D, AttnSpec p) {
    int warp = (blockIdx.x * blockDim.x + threadIdx.x) / 32, lane = threadIdx.x % 32;
    if (warp >= B * NH * T) return;
    int i = warp % T, h = (warp / T) % NH, b = warp / (T * NH);
    size_t C = (size_t)NH * D, row3 = 3 * C;
    const bf16* q = qkv + ((size_t)b * T + i) * row3 + (size_t)h * D;
    const bf16* go = dout + ((size_t)b * T + i) * C + (size_t)h * D;
    const bf16* oo = out + ((size_t)b * T + i) * C + (size_t)h * D;
    float scale = rsqrtf((float)D);
    float qd[GEN_DPL], gd[GEN_DPL], dq[GEN_DPL];
    float dsum = 0.0f;
    for (int k = 0; k < GEN_DPL; k++) {
        int d = lane + 32 * k;
        qd[k] = d < D ? __bfloat162float(q[d]) * scale : 0.0f;
        gd[k] = d < D ? __bfloat162float(go[d]) : 0.0f;
        dsum += d < D ? gd[k] * __bfloat162float(oo[d]) : 0.0f;
        dq[k] = 0.0f;
    }
    dsum = general_warp_sum(dsum);
    float li = lse[((size_t)b * NH + h) * T + i];
    for (int j = gen_key_after<WALK>(p, i, -1, T); j < T; j = gen_key_after<WALK>(p, i, j, T)) {
        const bf16* kj = qkv + ((size_t)b * T + j) * row3 + C + (size_t)h * D;
        const bf16* vj = kj + C;
        float s = 0.0f, dp = 0.0f;
        for (int k = 0; k < GEN_DPL; k++) {
            int d = lane + 32 * k;
            if (d < D) { s += qd[k] * __bfloat162float(kj[d]); dp += gd[k] * __bfloat162float(vj[d]); }
        }
        s = general_warp_sum(s);
        dp = general_warp_sum(dp);
        float ds = expf(s - li) * (dp - dsum) * scale;
        for (int k = 0; k < GEN_DPL; k++) { int d = lane + 32 * k; if (d < D) dq[k] += ds * __bfloat162float(kj[d]); }
    }
    bf16* dqrow = dqkv + ((size_t)b * T + i) * row3 + (size_t)h * D;
    for (int k = 0; k < GEN_DPL; k++) { int d = lane + 32 * k; if (d < D) dqrow[d] = __float2bfloat16(dq[k]); }
    if (lane == 0) Dsum[((size_t)b * NH + h) * T + i] = dsum;
}

template<bool WALK>
__global__ void attention_general_dkdv_kernel(bf16* dqkv, const float* Dsum, const bf16* qkv, const bf16* dout,
                                              const float* lse, int B, int T, int NH, int D, AttnSpec p) {
    int warp = (blockIdx.x * blockDim.x + threadIdx.x) / 32, lane = threadIdx.x % 32;
    if (warp >= B * NH * T) return;
    int j = warp % T, h = (warp / T) % NH, b = warp / (T * NH);
    size_t C = (size_t)NH * D, row3 = 3 * C;
    const bf16* kj = qkv + ((size_t)b * T + j) * row3 + C + (size_t)h * D;
    const bf16* vj = kj + C;
    float scale = rsqrtf((float)D);
    float kd[GEN_DPL], vd[GEN_DPL], dk[GEN_DPL], dv[GEN_DPL];
    for (int k = 0; k < GEN_DPL; k++) {
        int d = lane + 32 * k;
        kd[k] = d < D ? __bfloat162float(kj[d]) : 0.0f;
        vd[k] = d < D ? __bfloat162float(vj[d]) : 0.0f;
        dk[k] = 0.0f;
        dv[k] = 0.0f;
    }
    for (int i = gen_query_after<WALK>(p, j, -1, T); i < T; i = gen_query_after<WALK>(p, j, i, T)) {
        const bf16* q = qkv + ((size_t)b * T + i) * row3 + (size_t)h * D;
        const bf16* go = dout + ((size_t)b * T + i) * C + (size_t)h * D;
        float s = 0.0f, dp = 0.0f;
        for (int k = 0; k < GEN_DPL; k++) {
            int d = lane + 32 * k;
            if (d < D) { s += __bfloat162float(q[d]) * kd[k]; dp += __bfloat162float(go[d]) * vd[k]; }
        }
        s = general_warp_sum(s) * scale;
        dp = general_warp_sum(dp);
        float pr = expf(s - lse[((size_t)b * NH + h) * T + i]);
        float ds = pr * (dp - Dsum[((size_t)b * NH + h) * T + i]) * scale;
        for (int k = 0; k < GEN_DPL; k++) {
            int d = lane + 32 * k;
            if (d < D) { dv[k] += pr * __bfloat162float(go[d]); dk[k] += ds * __bfloat162float(q[d]); }
        }
    }
    bf16* dkrow = dqkv + ((size_t)b * T + j) * row3 + C + (size_t)h * D;
    for (int k = 0; k < GEN_DPL; k++) {
        int d = lane + 32 * k;
        if (d < D) { dkrow[d] = __float2bfloat16(dk[k]); dkrow[C + d] = __float2bfloat16(dv[k]); }
    }
}

template<bool WALK>
static void attention_general_warp_forward(bf16* out, float* lse, const bf16* qkv, int B, int T, int NH, int D, const AttnSpec& p) {
    size_t warps = (size_t)B * NH * T;
    attention_general_forward_kernel<WALK><<<(unsigned)((warps * 32 + 255) / 256), 256>>>(out, lse, qkv, B, T, NH, D, p);
    cudaCheckLaunch();
}

template<bool WALK>
static void attention_general_warp_backward(bf16* dqkv, float* Dsum, const bf16* qkv, const bf16* out, const bf16* dout,
                                            const float* lse, int B, int T, int NH, int D, const AttnSpec& p) {
    size_t warps = (size_t)B * NH * T;
    unsigned blocks = (unsigned)((warps * 32 + 255) / 256);
    attention_general_dq_kernel<WALK><<<blocks, 256>>>(dqkv, Dsum, qkv, out, dout, lse, B, T, NH, D, p);
    cudaCheckLaunch();
    attention_general_dkdv_kernel<WALK><<<blocks, 256>>>(dqkv, Dsum, qkv, dout, lse, B, T, NH, D, p);
    cudaCheckLaunch();
}
// @copy-end attn-general-warp

// @copy-begin attn-general-v3
// ----------------------------------------------------------------------------
// version 3: the forward on tensor cores, visiting only the key tiles with an allowed pair

// spec_allowed without its two global-position clauses (v3 answers those from per-tile masks):
// spec_allowed(i, j) == spec_allowed_local(i, j) || (j global && (!causal || j <= i)) || (!causal && i global)
__host__ __device__ inline bool spec_allowed_local(const AttnSpec& p, int i, int j) {
    if (p.causal && j > i) return false;
    int o = i - j;
    if (o >= 0 && (p.window == 0 || o < p.window)) return true;
    if (!p.causal && o < 0 && -o <= p.lookahead) return true;
    if (j < p.sinks) return true;
    if (!p.causal && i < p.sinks) return true;
    // o % d is a division by a value known only at run time (~20 instructions on every masked
    // element); a power-of-two stride, the usual one, takes a mask instead (a uniform branch)
    const bool on_stride = (p.dilation & (p.dilation - 1)) == 0 ? (o & (p.dilation - 1)) == 0 : o % p.dilation == 0;
    if (p.dilation > 1 && p.window > 0 && o >= p.window && on_stride &&
        (p.dilated_keys == 0 || o < p.window + p.dilated_keys * p.dilation)) return true;
    return false;
}

// Every pair of rows [q0, q0 + nq) x keys [k0, k0 + nk) allowed by the band (and lookahead) alone,
// all rows below T: such a block needs no mask. (A sufficient test: sinks, globals and dilated keys
// may allow more.)
__host__ __device__ inline bool spec_block_in_band(const AttnSpec& p, int q0, int nq, int k0, int nk, int T) {
    int q_last = q0 + nq - 1, k_last = k0 + nk - 1;
    if (q_last >= T || k_last >= T) return false;
    int ahead = p.causal ? 0 : p.lookahead;                    // keys up to row + ahead
    if ((long long)k_last > (long long)q0 + ahead) return false;
    if (p.window > 0 && q_last - k0 >= p.window) return false;   // keys down to row - W + 1
    return p.skip_stride == 0;                                   // version 6's part B masks every tile
}

// The smallest of every thread's v (NT threads); `red` is NT / 32 ints of shared memory (a barrier inside)
template<int NT>
__device__ __forceinline__ int gen_block_min(int v, int* red) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = min(v, __shfl_xor_sync(0xffffffffu, v, o));
    if (threadIdx.x % 32 == 0) red[threadIdx.x / 32] = v;
    __syncthreads();
    int m = red[0];
#pragma unroll
    for (int w = 1; w < NT / 32; w++) m = min(m, red[w]);
    return m;
}

// The next key tile (of BK keys) after tile kt that holds an allowed pair for some row of
// [q0, q0 + BQ), or -1: the smallest over the rows of the next allowed key past tile kt. Every thread
// of the block calls it (a barrier inside); `red` is NT / 32 ints of shared memory, and the caller
// puts a barrier between one call's read of it and the next call's write.
template<int BQ, int BK, int NT>
__device__ __forceinline__ int gen_next_key_tile(const AttnSpec& p, int q0, int kt, int T, int* red) {
    const int from = (kt + 1) * BK - 1;
    int best = T;
    for (int r = threadIdx.x; r < BQ; r += NT) {
        const int i = q0 + r;
        if (i < T) best = min(best, spec_next_key(p, i, from, T));
    }
    const int m = gen_block_min<NT>(best, red);
    return m < T ? m / BK : -1;
}

// The 16-key chunks of key tile k0 that hold an allowed pair for the warp's 16 rows (bit c: chunk c):
// lanes 0-15 test chunks 0-1 of row wq0 + lane, lanes 16-31 chunks 2-3 of row wq0 + lane - 16.
__device__ __forceinline__ unsigned gen_chunk_need(const AttnSpec& p, int wq0, int k0, int T, int lane) {
    const int i = wq0 + (lane & 15), c0 = (lane >> 4) * 2;
    bool n0 = false, n1 = false;
    if (i < T) {
        const int a = k0 + 16 * c0;
        const int j0 = spec_next_key(p, i, a - 1, T), j1 = spec_next_key(p, i, a + 15, T);  // T: none
        n0 = j0 < T && j0 <= a + 15;
        n1 = j1 < T && j1 <= a + 31;
    }
    const unsigned b0 = __ballot_sync(0xffffffffu, n0), b1 = __ballot_sync(0xffffffffu, n1);
    return ((b0 & 0xFFFFu) ? 1u : 0u) | ((b1 & 0xFFFFu) ? 2u : 0u) | ((b0 >> 16) ? 4u : 0u) | ((b1 >> 16) ? 8u : 0u);
}

// s = -inf where the pattern does not allow the pair (or the row or key is past T); thread (g, tg)
// holds rows g and g + 8 of the warp, keys k0 + 2 tg + 8 t + e. gkeys: bit x set iff key k0 + x is
// global; row_global: whether each of the thread's two rows is (non-causal patterns only use it).
__device__ __forceinline__ void gen_mask(float (&s)[TC_BK / 8][4], const AttnSpec& p, int k0, int wq0, int lane,
                                         int T, unsigned long long gkeys, const bool (&row_global)[2]) {
    const int g = lane / 4, tg = lane % 4;
#pragma unroll
    for (int r = 0; r < 2; r++) {
        const int i = wq0 + g + 8 * r;
#pragma unroll
        for (int t = 0; t < TC_BK / 8; t++)
#pragma unroll
            for (int e = 0; e < 2; e++) {
                const int x = 2 * tg + 8 * t + e, j = k0 + x;
                bool ok = i < T && j < T &&
                          (spec_allowed_local(p, i, j) || (((gkeys >> x) & 1ull) && (!p.causal || j <= i)) ||
                           (!p.causal && row_global[r]));
                if (!ok) s[t][2 * r + e] = -INFINITY;
            }
    }
}

// bit x set iff position t0 + x (x < 64) is one of the pattern's global positions
__device__ __forceinline__ unsigned long long gen_global_bits(const AttnSpec& p, int t0) {
    unsigned long long bits = 0;
    for (int gi = 0; gi < p.num_globals; gi++) {
        const int x = p.globals[gi] - t0;
        if (x >= 0 && x < 64) bits |= 1ull << x;
    }
    return bits;
}

template<int D>
__global__ void __launch_bounds__(TC_THREADS, fwd6_min_blocks<D>())
attention_general3_forward_kernel(bf16* out, float* lse, const bf16* qkv, int B, int T, int NH, AttnSpec p) {
    constexpr int BQ = TC_BQ, BK = TC_BK, NT = TC_THREADS, LDS = D + 8;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    bf16* Qs = reinterpret_cast<bf16*>(smem_raw);   // (BQ, LDS)
    bf16* Ks = Qs + BQ * LDS;                       // (2, BK, LDS)
    bf16* Vs = Ks + 2 * BK * LDS;                   // (2, BK, LDS)
    __shared__ int red[NT / 32];

    const int bh = blockIdx.x, b = bh / NH, h = bh % NH;
    const int qt = gridDim.y - 1 - blockIdx.y;      // longest tiles first (causal patterns)
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
    const int q0 = qt * BQ, wq0 = q0 + warp * 16;
    const size_t C = (size_t)NH * D, C3 = 3 * C;
    const bf16* qbase = qkv + (size_t)b * T * C3 + h * D;
    const bf16* kbase = qbase + C;
    const bf16* vbase = qbase + 2 * C;
    const float sl2 = LOG2E / sqrtf((float)D);
    bool row_global[2];
    for (int r = 0; r < 2; r++) row_global[r] = spec_is_global(p, wq0 + lane / 4 + 8 * r);

    auto load_kv = [&](int kt, int buf) {
        load_rows_async<D, BK, LDS, NT>(Ks + buf * BK * LDS, kbase, C3, kt * BK, T, tid);
        load_rows_async<D, BK, LDS, NT>(Vs + buf * BK * LDS, vbase, C3, kt * BK, T, tid);
    };
    load_rows_async<D, BQ, LDS, NT>(Qs, qbase, C3, q0, T, tid);
    int kt = gen_next_key_tile<BQ, BK, NT>(p, q0, -1, T, red);  // every row has a key (SPEC §1): kt >= 0
    if (kt >= 0) load_kv(kt, 0);
    cp_async_commit();
    cp_async_wait<0>();
    __syncthreads();
    uint32_t qf[D / 16][4];
    load_q_frags<D>(qf, Qs, warp, lane);

    float o[D / 8][4];
#pragma unroll
    for (int n = 0; n < D / 8; n++) { o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.f; }
    float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};

    for (int it = 0; kt >= 0; it++) {
        if (it > 0) {
            cp_async_wait<0>();   // tile kt has landed
            __syncthreads();      // ... for everyone, the tile before it is done in every warp, and red was read
        }
        const int kt_next = gen_next_key_tile<BQ, BK, NT>(p, q0, kt, T, red);
        if (kt_next >= 0) {       // into the buffer of the tile before this one
            load_kv(kt_next, (it + 1) & 1);
            cp_async_commit();
        }
        const int buf = it & 1, k0 = kt * BK;
        const unsigned need = gen_chunk_need(p, wq0, k0, T, lane);
        if (need) {
            float s[BK / 8][4];
            if (need == 0xFu) {   // every chunk: the chunk predicates fold away (as in v7)
                fwd6_qk<D>(s, qf, Ks + buf * BK * LDS, 0xFu, lane);
            } else {
                fwd6_qk<D>(s, qf, Ks + buf * BK * LDS, need, lane);
            }
            if (!spec_block_in_band(p, wq0, 16, k0, BK, T))
                gen_mask(s, p, k0, wq0, lane, T, gen_global_bits(p, k0), row_global);
            if (need == 0xFu) {
                fwd_softmax_pv<D>(o, m, l, s, Vs + buf * BK * LDS, 0xFu, lane, sl2);
            } else {
                fwd_softmax_pv<D>(o, m, l, s, Vs + buf * BK * LDS, need, lane, sl2);
            }
        }
        kt = kt_next;
    }
    fwd_epilogue<D>(out, lse, Qs, o, m, l, b, h, T, NH, q0, warp, lane);
}

template<int D>
static void attention_general3_forward_d(bf16* out, float* lse, const bf16* qkv, int B, int T, int NH, const AttnSpec& p) {
    const size_t smem = (size_t)(TC_BQ + 4 * TC_BK) * (D + 8) * sizeof(bf16);
    static bool configured = false;
    if (!configured) {
        cudaCheck(cudaFuncSetAttribute(attention_general3_forward_kernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
        configured = true;
    }
    dim3 grid(B * NH, ceil_div(T, TC_BQ));
    attention_general3_forward_kernel<D><<<grid, TC_THREADS, smem>>>(out, lse, qkv, B, T, NH, p);
    cudaCheckLaunch();
}

// heads of 64 and 128 on tensor cores; other head sizes on version 2
static void attention_general3_forward(bf16* out, float* lse, const bf16* qkv, int B, int T, int NH, int D, const AttnSpec& p) {
    if (D == 64) { attention_general3_forward_d<64>(out, lse, qkv, B, T, NH, p); return; }
    if (D == 128) { attention_general3_forward_d<128>(out, lse, qkv, B, T, NH, p); return; }
    attention_general_warp_forward<true>(out, lse, qkv, B, T, NH, D, p);
}

// ---- version 3's backward: backward v9's two passes (dK/dV per 64-key tile, dQ per 64-query tile on
// a second stream; attention_backward.cu's tile halves), each walking only the tiles with an allowed
// pair; the mask is -inf on the scores before the exponentials, as in the forward

// The next query tile (of BQ queries) after tile qt that holds an allowed pair for some key of
// [k0, k0 + BK), or -1: gen_next_key_tile transposed (spec_next_query for each key).
template<int BK, int BQ, int NT>
__device__ __forceinline__ int gen_next_query_tile(const AttnSpec& p, int k0, int qt, int T, int* red) {
    const int from = (qt + 1) * BQ - 1;
    int best = T;
    for (int r = threadIdx.x; r < BK; r += NT) {
        const int j = k0 + r;
        if (j < T) best = min(best, spec_next_query(p, j, from, T));
    }
    const int m = gen_block_min<NT>(best, red);
    return m < T ? m / BQ : -1;
}

// The 16-query chunks of query tile q0 (NC of them) that hold an allowed pair for the warp's 16 keys
// [wk0, wk0 + 16) (bit c: chunk c): lanes 0-15 test the even chunks of key wk0 + lane, lanes 16-31
// the odd ones of key wk0 + lane - 16.
template<int NC>
__device__ __forceinline__ unsigned gen_query_chunk_need(const AttnSpec& p, int wk0, int q0, int T, int lane) {
    static_assert(NC % 2 == 0, "the lanes take the chunks in pairs");
    const int j = wk0 + (lane & 15);
    unsigned need = 0;
#pragma unroll
    for (int cc = 0; cc < NC / 2; cc++) {
        const int a = q0 + 16 * (2 * cc + (lane >> 4));
        bool any = false;
        if (j < T) {
            const int i = spec_next_query(p, j, a - 1, T);   // T: none
            any = i < T && i <= a + 15;
        }
        const unsigned vote = __ballot_sync(0xffffffffu, any);
        if (vote & 0xFFFFu) need |= 1u << (2 * cc);
        if (vote >> 16) need |= 1u << (2 * cc + 1);
    }
    return need;
}

// gen_mask transposed, for S^T = K Q^T: thread (g, tg) holds keys wk0 + g + 8 r and queries
// q0 + 2 tg + 8 t + e. gq: bit x set iff query q0 + x is global; key_global: whether each of the
// thread's two keys is.
template<int BQ>
__device__ __forceinline__ void gen_mask_t(float (&st)[BQ / 8][4], const AttnSpec& p, int q0, int wk0, int lane,
                                           int T, unsigned long long gq, const bool (&key_global)[2]) {
    const int g = lane / 4, tg = lane % 4;
#pragma unroll
    for (int r = 0; r < 2; r++) {
        const int j = wk0 + g + 8 * r;
#pragma unroll
        for (int t = 0; t < BQ / 8; t++)
#pragma unroll
            for (int e = 0; e < 2; e++) {
                const int x = 2 * tg + 8 * t + e, i = q0 + x;
                bool ok = i < T && j < T &&
                          (spec_allowed_local(p, i, j) || (key_global[r] && (!p.causal || j <= i)) ||
                           (!p.causal && ((gq >> x) & 1ull)));
                if (!ok) st[t][2 * r + e] = -INFINITY;
            }
    }
}

// dK/dV's elementwise half on masked scores: P^T = 2^(S^T sl2 - lse_i log2 e), dS^T = P^T (dP^T - D_i);
// a masked score (-inf) gives P = 0 and dS = 0
template<int BQ>
__device__ __forceinline__ void gen_dkdv_elementwise(float (&st)[BQ / 8][4], float (&dpt)[BQ / 8][4],
                                                     const float* Ls, const float* Ds, int lane, float sl2) {
    const int tg = lane % 4;
#pragma unroll
    for (int t = 0; t < BQ / 8; t++) {
        const float2 Lv = *reinterpret_cast<const float2*>(Ls + t * 8 + 2 * tg);
        const float2 Dv = *reinterpret_cast<const float2*>(Ds + t * 8 + 2 * tg);
        const float L2[2] = {Lv.x * LOG2E, Lv.y * LOG2E}, Dq[2] = {Dv.x, Dv.y};
#pragma unroll
        for (int r = 0; r < 2; r++)
#pragma unroll
            for (int e = 0; e < 2; e++) {
                const float pr = ex2_approx(fmaf(st[t][2 * r + e], sl2, -L2[e]));
                st[t][2 * r + e] = pr;
                dpt[t][2 * r + e] = pr * (dpt[t][2 * r + e] - Dq[e]);
            }
    }
}

// dQ's elementwise half on masked scores: dS = P (dP - D_i), P = 2^(S sl2 - lse_i log2 e)
template<int BK>
__device__ __forceinline__ void gen_dq_elementwise(float (&s)[BK / 8][4], const float (&dp)[BK / 8][4],
                                                   const float (&L2)[2], const float (&Di)[2], float sl2) {
#pragma unroll
    for (int r = 0; r < 2; r++)
#pragma unroll
        for (int t = 0; t < BK / 8; t++)
#pragma unroll
            for (int e = 0; e < 2; e++) {
                const float pr = ex2_approx(fmaf(s[t][2 * r + e], sl2, -L2[r]));
                s[t][2 * r + e] = pr * (dp[t][2 * r + e] - Di[r]);
            }
}

// dK/dV: block per (b, h, 64 keys), warp w owns keys [16w, 16w + 16); the query tiles that hold an
// allowed pair for the block's keys stream through two buffers (Q, dO, lse, D_i), as in v9.
// Global keys (and sinks) are seen by every later query: their tiles walk all of T, unsplit.
template<int D>
__global__ void __launch_bounds__(TCB_THREADS)
attention_general3_dkdv_kernel(bf16* dqkv, const bf16* qkv, const bf16* dout, const float* lse, const float* Dbuf,
                               int B, int T, int NH, AttnSpec p) {
    constexpr int BK = TCB_BK, BQ = dkdv_bq<D>(), LDS = D + 8, NT = TCB_THREADS;
    constexpr unsigned ALL = (1u << (BQ / 16)) - 1;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    bf16* Ks  = reinterpret_cast<bf16*>(smem_raw);   // (BK, LDS)
    bf16* Vs  = Ks + BK * LDS;                       // (BK, LDS)
    bf16* Qs  = Vs + BK * LDS;                       // (2, BQ, LDS)
    bf16* dOs = Qs + 2 * BQ * LDS;                   // (2, BQ, LDS)
    float* Ls = reinterpret_cast<float*>(dOs + 2 * BQ * LDS);   // (2, BQ) lse
    float* Ds = Ls + 2 * BQ;                                    // (2, BQ) D_i
    __shared__ int red[NT / 32];

    const int bh = blockIdx.x, b = bh / NH, h = bh % NH, kt = blockIdx.y;
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
    const int k0 = kt * BK, wrow = warp * 16, wk0 = k0 + wrow;
    const size_t C = (size_t)NH * D, C3 = 3 * C;
    const bf16* qbase = qkv + (size_t)b * T * C3 + h * D;
    const bf16* dobase = dout + (size_t)b * T * C + h * D;
    const float* lse_bh = lse + (size_t)(b * NH + h) * T;
    const float* D_bh = Dbuf + (size_t)(b * NH + h) * T;
    const float sl2 = LOG2E / sqrtf((float)D);
    const float scale = 1.0f / sqrtf((float)D);
    bool key_global[2];
    for (int r = 0; r < 2; r++) key_global[r] = spec_is_global(p, wk0 + lane / 4 + 8 * r);

    auto load_q_tile = [&](int qt, int buf) {
        const int q0 = qt * BQ;
        load_rows_async<D, BQ, LDS, NT>(Qs + buf * BQ * LDS, qbase, C3, q0, T, tid);
        load_rows_async<D, BQ, LDS, NT>(dOs + buf * BQ * LDS, dobase, C, q0, T, tid);
        if (tid < BQ) {
            const int i = q0 + tid;
            const bool ok = i < T;
            cp_async_4(Ls + buf * BQ + tid, lse_bh + (ok ? i : 0), ok);
            cp_async_4(Ds + buf * BQ + tid, D_bh + (ok ? i : 0), ok);
        }
    };
    load_rows_async<D, BK, LDS, NT>(Ks, qbase + C, C3, k0, T, tid);
    load_rows_async<D, BK, LDS, NT>(Vs, qbase + 2 * C, C3, k0, T, tid);
    int qt = gen_next_query_tile<BK, BQ, NT>(p, k0, -1, T, red);   // every key has its own query (SPEC §1)
    if (qt >= 0) load_q_tile(qt, 0);
    cp_async_commit();
    cp_async_wait<0>();
    __syncthreads();

    float dk[D / 8][4], dv[D / 8][4];
#pragma unroll
    for (int n = 0; n < D / 8; n++)
#pragma unroll
        for (int e = 0; e < 4; e++) { dk[n][e] = 0.f; dv[n][e] = 0.f; }

    for (int it = 0; qt >= 0; it++) {
        if (it > 0) {
            cp_async_wait<0>();   // tile qt has landed
            __syncthreads();      // ... for everyone, the tile before it is done in every warp, and red was read
        }
        const int qt_next = gen_next_query_tile<BK, BQ, NT>(p, k0, qt, T, red);
        if (qt_next >= 0) {       // into the buffer of the tile before this one
            load_q_tile(qt_next, (it + 1) & 1);
            cp_async_commit();
        }
        const int buf = it & 1, q0 = qt * BQ;
        const unsigned need = gen_query_chunk_need<BQ / 16>(p, wk0, q0, T, lane);
        if (need) {
            const bf16* Qb = Qs + buf * BQ * LDS;
            const bf16* dOb = dOs + buf * BQ * LDS;
            auto tile = [&](unsigned chunks) {
                float st[BQ / 8][4], dpt[BQ / 8][4];
                bwd8_phase1<D, BQ>(st, dpt, Ks, Vs, Qb, dOb, chunks, wrow, lane);
                if (!spec_block_in_band(p, q0, BQ, wk0, 16, T))
                    gen_mask_t<BQ>(st, p, q0, wk0, lane, T, gen_global_bits(p, q0), key_global);
                gen_dkdv_elementwise<BQ>(st, dpt, Ls + buf * BQ, Ds + buf * BQ, lane, sl2);
                dkdv8_products<D, BQ>(dk, dv, st, dpt, Qb, dOb, chunks, lane);
            };
            if (need == ALL) tile(ALL);   // every chunk: the chunk predicates fold away
            else tile(need);
        }
        qt = qt_next;
    }
    cp_async_wait<0>();
    __syncwarp();
    stage_acc16<D, LDS>(Ks + wrow * LDS, dk, scale, lane);   // a warp's own 16 rows of K and V
    stage_acc16<D, LDS>(Vs + wrow * LDS, dv, 1.f, lane);
    __syncwarp();
    bf16* dkbase = dqkv + (size_t)b * T * C3 + C + h * D;
    store_rows16<D, LDS>(dkbase, C3, Ks + wrow * LDS, wk0, T, lane);
    store_rows16<D, LDS>(dkbase + C, C3, Vs + wrow * LDS, wk0, T, lane);
}

// dQ: block per (b, h, 64 queries), warp w owns rows [16w, 16w + 16); the key tiles that hold an
// allowed pair stream through two buffers (K, V), walked as in the forward.
template<int D>
__global__ void __launch_bounds__(TCB_THREADS)
attention_general3_dq_kernel(bf16* dqkv, const bf16* qkv, const bf16* dout, const float* lse, const float* Dbuf,
                             int B, int T, int NH, AttnSpec p) {
    constexpr int BK = TCB_BK, BQ = TCB_BQ_DQ, LDS = D + 8, NT = TCB_THREADS;
    constexpr unsigned ALL = (1u << (BK / 16)) - 1;
    static_assert(BK == 64, "gen_chunk_need tests four 16-key chunks");
    extern __shared__ __align__(16) unsigned char smem_raw[];
    bf16* Qs  = reinterpret_cast<bf16*>(smem_raw);   // (BQ, LDS)
    bf16* dOs = Qs + BQ * LDS;                       // (BQ, LDS)
    bf16* Ks  = dOs + BQ * LDS;                      // (2, BK, LDS)
    bf16* Vs  = Ks + 2 * BK * LDS;                   // (2, BK, LDS)
    __shared__ int red[NT / 32];

    const int bh = blockIdx.x, b = bh / NH, h = bh % NH;
    const int qt = gridDim.y - 1 - blockIdx.y;        // longest tiles first (causal patterns)
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane / 4;
    const int q0 = qt * BQ, wrow = warp * 16, wq0 = q0 + wrow;
    const size_t C = (size_t)NH * D, C3 = 3 * C;
    const bf16* qbase = qkv + (size_t)b * T * C3 + h * D;
    const bf16* dobase = dout + (size_t)b * T * C + h * D;
    const float sl2 = LOG2E / sqrtf((float)D);
    const float scale = 1.0f / sqrtf((float)D);
    bool row_global[2];
    for (int r = 0; r < 2; r++) row_global[r] = spec_is_global(p, wq0 + g + 8 * r);

    auto load_kv = [&](int kt, int buf) {
        load_rows_async<D, BK, LDS, NT>(Ks + buf * BK * LDS, qbase + C, C3, kt * BK, T, tid);
        load_rows_async<D, BK, LDS, NT>(Vs + buf * BK * LDS, qbase + 2 * C, C3, kt * BK, T, tid);
    };
    load_rows_async<D, BQ, LDS, NT>(Qs, qbase, C3, q0, T, tid);
    load_rows_async<D, BQ, LDS, NT>(dOs, dobase, C, q0, T, tid);
    int kt = gen_next_key_tile<BQ, BK, NT>(p, q0, -1, T, red);    // every row has a key (SPEC §1)
    if (kt >= 0) load_kv(kt, 0);
    cp_async_commit();
    float L2[2], Di[2];
#pragma unroll
    for (int r = 0; r < 2; r++) {
        const int i = wq0 + g + 8 * r;
        L2[r] = (i < T) ? lse[(size_t)(b * NH + h) * T + i] * LOG2E : 0.f;
        Di[r] = (i < T) ? Dbuf[(size_t)(b * NH + h) * T + i] : 0.f;
    }
    float dq[D / 8][4];
#pragma unroll
    for (int n = 0; n < D / 8; n++) { dq[n][0] = dq[n][1] = dq[n][2] = dq[n][3] = 0.f; }
    cp_async_wait<0>();
    __syncthreads();

    for (int it = 0; kt >= 0; it++) {
        if (it > 0) {
            cp_async_wait<0>();
            __syncthreads();
        }
        const int kt_next = gen_next_key_tile<BQ, BK, NT>(p, q0, kt, T, red);
        if (kt_next >= 0) {
            load_kv(kt_next, (it + 1) & 1);
            cp_async_commit();
        }
        const int buf = it & 1, k0 = kt * BK;
        const unsigned need = gen_chunk_need(p, wq0, k0, T, lane);
        if (need) {
            const bf16* Kb = Ks + buf * BK * LDS;
            const bf16* Vb = Vs + buf * BK * LDS;
            auto tile = [&](unsigned chunks) {
                float s[BK / 8][4], dp[BK / 8][4];
                bwd8_phase1<D, BK>(s, dp, Qs, dOs, Kb, Vb, chunks, wrow, lane);
                if (!spec_block_in_band(p, wq0, 16, k0, BK, T))
                    gen_mask(s, p, k0, wq0, lane, T, gen_global_bits(p, k0), row_global);
                gen_dq_elementwise<BK>(s, dp, L2, Di, sl2);
                dq8_products<D, BK>(dq, s, Kb, chunks, lane);
            };
            if (need == ALL) tile(ALL);   // every chunk: the chunk predicates fold away
            else tile(need);
        }
        kt = kt_next;
    }
    cp_async_wait<0>();
    __syncwarp();
    stage_acc16<D, LDS>(Qs + wrow * LDS, dq, scale, lane);
    __syncwarp();
    store_rows16<D, LDS>(dqkv + (size_t)b * T * C3 + h * D, C3, Qs + wrow * LDS, wq0, T, lane);
}

template<int D>
static void attention_general3_backward_d(bf16* dqkv, float* Dsum, const bf16* qkv, const bf16* out, const bf16* dout,
                                          const float* lse, int B, int T, int NH, const AttnSpec& p) {
    constexpr size_t smem_kv = dkdv_smem<D>(true), smem_q = dq_smem<D>(true);   // v9's layouts
    static bool configured = false;
    static SideStream side;
    if (!configured) {
        cudaCheck(cudaFuncSetAttribute(attention_general3_dkdv_kernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem_kv));
        cudaCheck(cudaFuncSetAttribute(attention_general3_dq_kernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem_q));
        side = side_stream_create();
        configured = true;
    }
    launch_dot<D>(Dsum, out, dout, B, T, NH);
    side_stream_fork(side);
    attention_general3_dkdv_kernel<D><<<dim3(B * NH, ceil_div(T, TCB_BK)), TCB_THREADS, smem_kv>>>(
        dqkv, qkv, dout, lse, Dsum, B, T, NH, p);
    cudaCheckLaunch();
    attention_general3_dq_kernel<D><<<dim3(B * NH, ceil_div(T, TCB_BQ_DQ)), TCB_THREADS, smem_q, side.stream>>>(
        dqkv, qkv, dout, lse, Dsum, B, T, NH, p);
    cudaCheckLaunch();
    side_stream_join(side);
}

// heads of 64 and 128 on tensor cores; other head sizes on version 2
static void attention_general3_backward(bf16* dqkv, float* Dsum, const bf16* qkv, const bf16* out, const bf16* dout,
                                        const float* lse, int B, int T, int NH, int D, const AttnSpec& p) {
    if (D == 64) { attention_general3_backward_d<64>(dqkv, Dsum, qkv, out, dout, lse, B, T, NH, p); return; }
    if (D == 128) { attention_general3_backward_d<128>(dqkv, Dsum, qkv, out, dout, lse, B, T, NH, p); return; }
    attention_general_warp_backward<true>(dqkv, Dsum, qkv, out, dout, lse, B, T, NH, D, p);
}
// @copy-end attn-general-v3

// @copy-begin attn-general-bits
// ----------------------------------------------------------------------------
// version 5's masks: the allowed keys of a query row in a 64-key tile (or the allowed queries of a
// key column in a 64-query tile) as one 64-bit set, built from the pattern's parts once a tile,
// where versions 3 and 4 test spec_allowed on every score (~20 instructions each, 32 a thread)

// positions [lo, hi] (inclusive; none when lo > hi) of the tile [t0, t0 + 64) as bits x = position - t0
__host__ __device__ inline unsigned long long tile_range_bits(long long lo, long long hi, int t0) {
    lo = lo - t0 > 0 ? lo - t0 : 0;
    hi = hi - t0 < 63 ? hi - t0 : 63;
    if (lo > hi) return 0ull;
    const unsigned long long upto = hi == 63 ? ~0ull : (1ull << (hi + 1)) - 1;
    return upto & (~0ull << lo);
}

// bits x of the tile with x = first (mod d), 0 <= first < d
__host__ __device__ inline unsigned long long tile_stride_bits(long long first, int d) {
    if (first >= 64) return 0ull;
    if (d >= 64) return 1ull << first;
    if ((d & (d - 1)) == 0) return (~0ull / ((1ull << d) - 1)) << first;   // d divides 64: 0x1111... for d = 4
    unsigned long long bits = 0ull;
    for (long long x = first; x < 64; x += d) bits |= 1ull << x;
    return bits;
}

// spec_allowed(p, i, k0 + x) for x = 0..63 (false past T), as bits. gkeys: bit x set iff key k0 + x
// is global (gen_global_bits); row_global: whether query i is.
__host__ __device__ inline unsigned long long spec_row_bits_unskipped(const AttnSpec& p, int i, int k0, int T,
                                                                      unsigned long long gkeys, bool row_global) {
    if (i >= T) return 0ull;
    const unsigned long long in_T = tile_range_bits(0, T - 1, k0);
    if (!p.causal && (i < p.sinks || row_global)) return in_T;            // this query sees every key
    const unsigned long long upto_i = tile_range_bits(0, i, k0);           // causal: keys j <= i
    unsigned long long bits = tile_range_bits(p.window > 0 ? (long long)i - p.window + 1 : 0, i, k0);   // band
    if (!p.causal && p.lookahead > 0) bits |= tile_range_bits((long long)i + 1, (long long)i + p.lookahead, k0);
    if (p.sinks > 0) bits |= tile_range_bits(0, p.sinks - 1, k0) & (p.causal ? upto_i : ~0ull);
    bits |= p.causal ? gkeys & upto_i : gkeys;
    if (p.dilation > 1 && p.window > 0) {   // j = i - o, o >= W a multiple of d, o < W + K d (K = 0: any)
        const long long hi = (long long)i - p.window;
        const long long lo = p.dilated_keys > 0 ? hi - (long long)p.dilated_keys * p.dilation + 1 : 0;
        const unsigned long long range = tile_range_bits(lo, hi, k0);
        if (range) bits |= range & tile_stride_bits((((long long)i - k0) % p.dilation + p.dilation) % p.dilation, p.dilation);
    }
    return bits & in_T;
}

// spec_allowed(p, q0 + x, j) for x = 0..63 (false past T), as bits: spec_row_bits transposed. gq: bit
// x set iff query q0 + x is global; key_global: whether key j is.
__host__ __device__ inline unsigned long long spec_col_bits_unskipped(const AttnSpec& p, int j, int q0, int T,
                                                                      unsigned long long gq, bool key_global) {
    if (j >= T) return 0ull;
    const unsigned long long in_T = tile_range_bits(0, T - 1, q0);
    const unsigned long long from_j = p.causal ? tile_range_bits(j, T - 1, q0) : ~0ull;   // causal: queries i >= j
    if (j < p.sinks || key_global) return in_T & from_j;                   // every query sees this key
    unsigned long long bits = tile_range_bits(j, p.window > 0 ? (long long)j + p.window - 1 : (long long)T - 1, q0);
    if (!p.causal) {
        if (p.lookahead > 0) bits |= tile_range_bits((long long)j - p.lookahead, (long long)j - 1, q0);
        if (p.sinks > 0) bits |= tile_range_bits(0, p.sinks - 1, q0);     // the first S queries see every key
        bits |= gq;                                                        // and the global ones
    }
    if (p.dilation > 1 && p.window > 0) {   // i = j + o, o >= W a multiple of d, o < W + K d (K = 0: any)
        const long long lo = (long long)j + p.window;
        const long long hi = p.dilated_keys > 0 ? lo + (long long)p.dilated_keys * p.dilation - 1 : (long long)T - 1;
        const unsigned long long range = tile_range_bits(lo, hi, q0);
        if (range) bits |= range & tile_stride_bits((((long long)j - q0) % p.dilation + p.dilation) % p.dilation, p.dilation);
    }
    return bits & in_T & from_j;
}

// with version 6's skip (spec_skipped): the row's keys j = i - o, o a multiple of skip_stride in
// [0, skip_span), left out
__host__ __device__ inline unsigned long long spec_row_bits(const AttnSpec& p, int i, int k0, int T,
                                                            unsigned long long gkeys, bool row_global) {
    unsigned long long bits = spec_row_bits_unskipped(p, i, k0, T, gkeys, row_global);
    if (p.skip_stride > 1) {
        const unsigned long long range = tile_range_bits(p.skip_span > 0 ? (long long)i - p.skip_span + 1 : 0, i, k0);
        if (range) bits &= ~(range & tile_stride_bits((((long long)i - k0) % p.skip_stride + p.skip_stride) % p.skip_stride, p.skip_stride));
    }
    return bits;
}

// the same for the key's queries i = j + o
__host__ __device__ inline unsigned long long spec_col_bits(const AttnSpec& p, int j, int q0, int T,
                                                            unsigned long long gq, bool key_global) {
    unsigned long long bits = spec_col_bits_unskipped(p, j, q0, T, gq, key_global);
    if (p.skip_stride > 1) {
        const unsigned long long range = tile_range_bits(j, p.skip_span > 0 ? (long long)j + p.skip_span - 1 : (long long)T - 1, q0);
        if (range) bits &= ~(range & tile_stride_bits((((long long)j - q0) % p.skip_stride + p.skip_stride) % p.skip_stride, p.skip_stride));
    }
    return bits;
}

// s[4t + 2r + e] = -inf where bit 8t + 2tg + e of sets[r] is clear: the wgmma accumulator layout,
// thread (warp, g, tg) holding rows (or keys) +0 and +8 of its warp's 16 and columns 8t + 2tg + e
__device__ __forceinline__ void mask_from_sets(float (&s)[32], const unsigned long long (&sets)[2], int tg) {
#pragma unroll
    for (int r = 0; r < 2; r++) {
        const unsigned long long bits = sets[r] >> (2 * tg);
#pragma unroll
        for (int t = 0; t < 8; t++)
#pragma unroll
            for (int e = 0; e < 2; e++)
                if (!((bits >> (8 * t + e)) & 1ull)) s[4 * t + 2 * r + e] = -INFINITY;
    }
}

// gen_mask_wg with the sets: s[4t + 2r + e] is row r0 + 8r, key k0 + 8t + 2tg + e
__device__ __forceinline__ void gen_mask_wg_bits(float (&s)[32], const AttnSpec& p, int k0, int r0, int tg, int T,
                                                 unsigned long long gkeys, const bool (&row_global)[2]) {
    const unsigned long long sets[2] = {spec_row_bits(p, r0, k0, T, gkeys, row_global[0]),
                                        spec_row_bits(p, r0 + 8, k0, T, gkeys, row_global[1])};
    mask_from_sets(s, sets, tg);
}

// gen_mask_wg_t with the sets: st[4t + 2r + e] is key kr0 + 8r, query q0 + 8t + 2tg + e
__device__ __forceinline__ void gen_mask_wg_t_bits(float (&st)[32], const AttnSpec& p, int q0, int kr0, int tg, int T,
                                                   unsigned long long gq, const bool (&key_global)[2]) {
    const unsigned long long sets[2] = {spec_col_bits(p, kr0, q0, T, gq, key_global[0]),
                                        spec_col_bits(p, kr0 + 8, q0, T, gq, key_global[1])};
    mask_from_sets(st, sets, tg);
}
// @copy-end attn-general-bits

// @copy-begin attn-general-v4
// ----------------------------------------------------------------------------
// version 4: the forward on Hopper's wgmma: forward v10's block (64 query rows, one warpgroup, Q, K
// and V by TMA, two K / V buffers with an mbarrier each) walking version 3's key tiles

// gen_mask for a wgmma accumulator: s[4t + 2r + e] is row r0 + 8r, key k0 + 8t + 2tg + e (64 keys)
__device__ __forceinline__ void gen_mask_wg(float (&s)[32], const AttnSpec& p, int k0, int r0, int tg, int T,
                                            unsigned long long gkeys, const bool (&row_global)[2]) {
#pragma unroll
    for (int r = 0; r < 2; r++) {
        const int i = r0 + 8 * r;
#pragma unroll
        for (int t = 0; t < 8; t++)
#pragma unroll
            for (int e = 0; e < 2; e++) {
                const int x = 8 * t + 2 * tg + e, j = k0 + x;
                bool ok = i < T && j < T &&
                          (spec_allowed_local(p, i, j) || (((gkeys >> x) & 1ull) && (!p.causal || j <= i)) ||
                           (!p.causal && row_global[r]));
                if (!ok) s[4 * t + 2 * r + e] = -INFINITY;
            }
    }
}

// 4 blocks per SM at D = 64 (v10 runs 5 at 96 registers; the walk and the mask need more)
template<int D> __host__ __device__ constexpr int gen4_min_blocks() { return D == 64 ? 4 : 2; }

template<int D, bool BITS>
__global__ void __launch_bounds__(128, gen4_min_blocks<D>())
attention_general4_forward_kernel(bf16* out, float* lse, const __grid_constant__ CUtensorMap qkv_map,
                                  int B, int T, int NH, AttnSpec p) {
#ifdef HAS_WGMMA
    constexpr int BQ = 64, BK = FWD8_BK, CB = D / 64, NT = 128;   // CB: 64-column boxes per row
    constexpr uint32_t QBYTES = BQ * D * 2, KVBYTES = BK * D * 2;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    __shared__ __align__(8) uint64_t tile_full[2];     // one mbarrier per K / V buffer
    __shared__ int red[NT / 32];
    const uint32_t raw = (uint32_t)__cvta_generic_to_shared(smem_raw);
    const uint32_t sbase = (raw + 1023u) & ~1023u;     // the swizzle repeats every 1024 bytes
    unsigned char* smem = smem_raw + (sbase - raw);
    const uint32_t Qs = sbase;                         // (BQ rows) swizzled
    const uint32_t Ks = Qs + QBYTES;                   // 2 buffers of (BK rows)
    const uint32_t Vs = Ks + 2 * KVBYTES;              // 2 buffers of (BK rows)
    const uint32_t bar0 = (uint32_t)__cvta_generic_to_shared(&tile_full[0]);

    const int h = blockIdx.y, b = blockIdx.z;
    const int qt = gridDim.x - 1 - blockIdx.x;         // longest tiles first (causal patterns)
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane / 4, tg = lane % 4;
    const int q0 = qt * BQ;
    const int r0 = q0 + warp * 16 + g;                 // this thread's rows: r0, r0 + 8
    const int C = NH * D;
    const float sl2 = LOG2E / sqrtf((float)D);
    bool row_global[2];
    for (int r = 0; r < 2; r++) row_global[r] = spec_is_global(p, r0 + 8 * r);

    auto issue_kv = [&](int kt, int buf) {   // one thread
#pragma unroll
        for (int cb = 0; cb < CB; cb++) {
            tma_load_box(Ks + buf * KVBYTES + cb * BK * 128, &qkv_map, C + h * D + cb * 64, kt * BK, b, bar0 + 8 * buf);
            tma_load_box(Vs + buf * KVBYTES + cb * BK * 128, &qkv_map, 2 * C + h * D + cb * 64, kt * BK, b, bar0 + 8 * buf);
        }
    };
    int kt = gen_next_key_tile<BQ, BK, NT>(p, q0, -1, T, red);   // every row has a key (SPEC §1): kt >= 0
    if (tid == 0) {
        mbar_init(bar0, 1);
        mbar_init(bar0 + 8, 1);
        mbar_init_fence();
        mbar_arrive_expect_bytes(bar0, QBYTES + (kt >= 0 ? 2 * KVBYTES : 0));
#pragma unroll
        for (int cb = 0; cb < CB; cb++) tma_load_box(Qs + cb * BQ * 128, &qkv_map, h * D + cb * 64, q0, b, bar0);
        if (kt >= 0) issue_kv(kt, 0);
    }
    __syncthreads();   // the barriers are initialised before anyone waits on them

    const uint64_t dq0 = wg_desc(Qs, 16, 1024);
    const uint64_t dk0 = wg_desc(Ks, 16, 1024);
    const uint64_t dv0 = wg_desc(Vs, BK * 128, 1024);
    auto dk = [&](int buf) { return dk0 + (uint32_t)(buf * KVBYTES >> 4); };
    auto dv = [&](int buf) { return dv0 + (uint32_t)(buf * KVBYTES >> 4); };

    float o[D / 2];
#pragma unroll
    for (int i = 0; i < D / 2; i++) o[i] = 0.f;
    float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};
    uint32_t pa[BK / 16][4];

    int it = 0;
    for (; kt >= 0; it++) {
        if (it > 0) __syncthreads();   // every warp is done with tile it-1 (its buffers take tile it+1) and read red
        const int kt_next = gen_next_key_tile<BQ, BK, NT>(p, q0, kt, T, red);
        if (tid == 0 && kt_next >= 0) {
            mbar_arrive_expect_bytes(bar0 + 8 * ((it + 1) & 1), 2 * KVBYTES);
            issue_kv(kt_next, (it + 1) & 1);
        }
        mbar_wait(bar0 + 8 * (it & 1), (it >> 1) & 1);   // tile it (and, for it = 0, Q) landed
        const int k0 = kt * BK;
        float s[32];
        wg_issue_abt<D, BQ, BK>(s, dq0, dk(it & 1));     // S = Q K^T
        wg_wait<0>();
        wg_fence_regs(s);
        if (!spec_block_in_band(p, q0, BQ, k0, BK, T)) {
            if constexpr (BITS) gen_mask_wg_bits(s, p, k0, r0, tg, T, gen_global_bits(p, k0), row_global);
            else                gen_mask_wg(s, p, k0, r0, tg, T, gen_global_bits(p, k0), row_global);
        }
        fwd8_online_softmax<D>(s, o, m, l, pa, sl2);
        wg_issue_pb<D>(o, pa, dv(it & 1));               // O += P V
        wg_wait<0>();
        kt = kt_next;
    }
    if (it == 0) mbar_wait(bar0, 0);   // no key tile (impossible, SPEC §1): Q's copy still lands before the epilogue
    wg_fence_regs(o);
    fwd10_epilogue<D>(out, lse, smem, o, m, l, b, h, q0, r0, warp, g, tg, tid, T, NH);
#endif
}

template<int D, bool BITS = false>
static void attention_general4_forward_d(bf16* out, float* lse, const bf16* qkv, int B, int T, int NH, const AttnSpec& p) {
    const size_t smem = fwd10_smem<D>();
    static bool configured = false;
    if (!configured) {
        cudaCheck(cudaFuncSetAttribute(attention_general4_forward_kernel<D, BITS>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
        configured = true;
    }
    const CUtensorMap map = rows_tensor_map(qkv, B, T, 3 * NH * D, 64);
    dim3 grid(ceil_div(T, 64), NH, B);   // a head's query tiles side by side: they share K / V in the L2
    attention_general4_forward_kernel<D, BITS><<<grid, 128, smem>>>(out, lse, map, B, T, NH, p);
    cudaCheckLaunch();
}

// ---- version 4's backward: backward v11's two passes (wgmma, TMA; dK/dV per 64 keys, dQ per 64
// queries on a second stream) walking version 3's tiles, the mask on the wgmma layout before the
// exponentials

// gen_mask_wg transposed, for S^T = K Q^T: st[4t + 2r + e] is key kr0 + 8r, query q0 + 8t + 2tg + e;
// gq: bit x set iff query q0 + x is global; key_global: whether each of the thread's two keys is
__device__ __forceinline__ void gen_mask_wg_t(float (&st)[32], const AttnSpec& p, int q0, int kr0, int tg, int T,
                                              unsigned long long gq, const bool (&key_global)[2]) {
#pragma unroll
    for (int r = 0; r < 2; r++) {
        const int j = kr0 + 8 * r;
#pragma unroll
        for (int t = 0; t < 8; t++)
#pragma unroll
            for (int e = 0; e < 2; e++) {
                const int x = 8 * t + 2 * tg + e, i = q0 + x;
                bool ok = i < T && j < T &&
                          (spec_allowed_local(p, i, j) || (key_global[r] && (!p.causal || j <= i)) ||
                           (!p.causal && ((gq >> x) & 1ull)));
                if (!ok) st[4 * t + 2 * r + e] = -INFINITY;
            }
    }
}

// dK/dV: block per (64 keys, head, batch); the query tiles with an allowed pair for the block's keys
// (Q, dO by TMA, lse and D_i by cp.async) through two buffers. Thread rows (keys) kr0, kr0 + 8;
// accumulator column 8t + 2tg + e is query q0 + 8t + 2tg + e.
template<int D, bool BITS>
__global__ void __launch_bounds__(BWD10_THREADS, bwd10_dkdv_min_blocks<D>())
attention_general4_dkdv_kernel(bf16* dqkv, const float* lse, const float* Dbuf, int B, int T, int NH, AttnSpec p,
                               const __grid_constant__ CUtensorMap qkv_map, const __grid_constant__ CUtensorMap dout_map) {
#ifdef HAS_WGMMA
    constexpr int BK = BWD10_ROWS, BQ = BWD10_ROWS, NT = BWD10_THREADS;
    constexpr uint32_t TILE = BWD10_ROWS * D * 2;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    const uint32_t raw = (uint32_t)__cvta_generic_to_shared(smem_raw);
    const uint32_t sbase = (raw + 1023u) & ~1023u;   // swizzled tiles: 1024-byte alignment
    const uint32_t Ks = sbase;                       // (BK rows) swizzled
    const uint32_t Vs = Ks + TILE;                   // (BK rows)
    const uint32_t Qs = Vs + TILE;                   // 2 buffers of (BQ rows)
    const uint32_t dOs = Qs + 2 * TILE;              // 2 buffers of (BQ rows)
    float* Ls = reinterpret_cast<float*>(smem_raw + (sbase - raw) + 6 * TILE);   // (2, BQ) lse
    float* Ds = Ls + 2 * BQ;                                                     // (2, BQ) D_i
    __shared__ __align__(8) uint64_t tile_full[2];   // one mbarrier per Q / dO buffer
    __shared__ int red[NT / 32];
    const uint32_t bar0 = (uint32_t)__cvta_generic_to_shared(&tile_full[0]);

    const int kt = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane / 4, tg = lane % 4;
    const int k0 = kt * BK, kr0 = k0 + warp * 16 + g;   // this thread's keys: kr0, kr0 + 8
    const size_t C = (size_t)NH * D, C3 = 3 * C;
    const float* lse_bh = lse + (size_t)(b * NH + h) * T;
    const float* D_bh = Dbuf + (size_t)(b * NH + h) * T;
    const float sl2 = LOG2E / sqrtf((float)D);
    const float scale = 1.0f / sqrtf((float)D);
    bool key_global[2];
    for (int r = 0; r < 2; r++) key_global[r] = spec_is_global(p, kr0 + 8 * r);

    auto load_q_tile = [&](int qt, int buf) {
        const int q0 = qt * BQ;
        if (tid == 0) {
            mbar_arrive_expect_bytes(bar0 + 8 * buf, 2 * TILE);
            tma_load_tile64<D>(Qs + buf * TILE, &qkv_map, h * D, q0, b, bar0 + 8 * buf);
            tma_load_tile64<D>(dOs + buf * TILE, &dout_map, h * D, q0, b, bar0 + 8 * buf);
        }
        if (tid < BQ) {
            const int i = q0 + tid;
            const bool ok = i < T;
            cp_async_4(Ls + buf * BQ + tid, lse_bh + (ok ? i : 0), ok);
            cp_async_4(Ds + buf * BQ + tid, D_bh + (ok ? i : 0), ok);
        }
    };
    // descriptors: K, V (A, K-major); Q, dO as K-major B (S^T, dP^T) and as N-major B (dK, dV)
    const uint64_t dK = wg_desc(Ks, 16, 1024), dV = wg_desc(Vs, 16, 1024);
    auto kmaj = [&](uint32_t tile) { return wg_desc(tile, 16, 1024); };
    auto nmaj = [&](uint32_t tile) { return wg_desc(tile, BQ * 128, 1024); };

    float dk[D / 2], dv[D / 2];
#pragma unroll
    for (int i = 0; i < D / 2; i++) { dk[i] = 0.f; dv[i] = 0.f; }

    int qt = gen_next_query_tile<BK, BQ, NT>(p, k0, -1, T, red);   // every key has its own query (SPEC §1)
    if (tid == 0) {
        mbar_init(bar0, 1);
        mbar_init(bar0 + 8, 1);
        mbar_init_fence();
        if (qt >= 0) {             // K and V ride on Q / dO tile 0's phase
            mbar_expect_bytes(bar0, 2 * TILE);
            tma_load_tile64<D>(Ks, &qkv_map, C + h * D, k0, b, bar0);
            tma_load_tile64<D>(Vs, &qkv_map, 2 * C + h * D, k0, b, bar0);
        }
    }
    __syncthreads();               // the barriers are initialised before anyone waits on them
    if (qt >= 0) load_q_tile(qt, 0);
    cp_async_commit();
    for (int it = 0; qt >= 0; it++) {
        cp_async_wait<0>();        // my lse / D_i copies of tile it landed
        __syncthreads();           // ... everyone's; everyone is done with tile it-1 and read red
        const int qt_next = gen_next_query_tile<BK, BQ, NT>(p, k0, qt, T, red);
        if (qt_next >= 0) {        // into the buffers of tile it-1
            load_q_tile(qt_next, (it + 1) & 1);
            cp_async_commit();
        }
        mbar_wait(bar0 + 8 * (it & 1), (it >> 1) & 1);   // Q, dO (and K, V) of tile it
        const int buf = it & 1, q0 = qt * BQ;
        const uint32_t Qb = Qs + buf * TILE, dOb = dOs + buf * TILE;
        float st[32], dpt[32];
        wg_issue_abt<D, BK, BQ>(st, dK, kmaj(Qb));     // S^T = K Q^T
        wg_issue_abt<D, BK, BQ>(dpt, dV, kmaj(dOb));   // dP^T = V dO^T
        const float* Lb = Ls + buf * BQ;
        const float* Db = Ds + buf * BQ;
        wg_wait<1>();                  // S^T done, dP^T may still run
        wg_fence_regs(st);
        if (!spec_block_in_band(p, q0, BQ, k0, BK, T)) {
            if constexpr (BITS) gen_mask_wg_t_bits(st, p, q0, kr0, tg, T, gen_global_bits(p, q0), key_global);
            else                gen_mask_wg_t(st, p, q0, kr0, tg, T, gen_global_bits(p, q0), key_global);
        }
#pragma unroll
        for (int t = 0; t < 8; t++) {  // P^T = 2^(S^T sl2 - lse log2 e): 0 where masked
            const float2 Lv = *reinterpret_cast<const float2*>(Lb + 8 * t + 2 * tg);
            const float L2[2] = {Lv.x * LOG2E, Lv.y * LOG2E};
#pragma unroll
            for (int r = 0; r < 2; r++)
#pragma unroll
                for (int e = 0; e < 2; e++)
                    st[4 * t + 2 * r + e] = ex2_approx(fmaf(st[4 * t + 2 * r + e], sl2, -L2[e]));
        }
        uint32_t pa[4][4];
        bwd10_pack(pa, st);
        wg_issue_pb<D>(dv, pa, nmaj(dOb));             // dV += P^T dO
        wg_wait<1>();                  // dP^T done, dV may still run
        wg_fence_regs(dpt);
#pragma unroll
        for (int t = 0; t < 8; t++) {  // dS^T = P^T (dP^T - D_i), P^T back from its bf16 fragments (as v10)
            const float2 Dv = *reinterpret_cast<const float2*>(Db + 8 * t + 2 * tg);
            const float Dq[2] = {Dv.x, Dv.y};
#pragma unroll
            for (int r = 0; r < 2; r++)
#pragma unroll
                for (int e = 0; e < 2; e++) {
                    const uint32_t pp = pa[t / 2][2 * (t % 2) + r];
                    const float pr = __uint_as_float(e == 0 ? pp << 16 : pp & 0xffff0000u);
                    dpt[4 * t + 2 * r + e] = pr * (dpt[4 * t + 2 * r + e] - Dq[e]);
                }
        }
        uint32_t sa[4][4];
        bwd10_pack(sa, dpt);
        wg_issue_pb<D>(dk, sa, nmaj(Qb));              // dK += dS^T Q
        wg_wait<0>();
        wg_fence_regs(dk);
        wg_fence_regs(dv);
        qt = qt_next;
    }
    cp_async_wait<0>();
    bf16* dkbase = dqkv + (size_t)b * T * C3 + C + h * D;
    bwd10_store_rows<D>(dkbase, C3, dk, kr0, tg, T, scale);
    bwd10_store_rows<D>(dkbase + C, C3, dv, kr0, tg, T, 1.f);
#endif
}

// dQ: block per (64 queries, head, batch), longest first; the key tiles with an allowed pair (K, V
// by TMA) through two buffers. Thread rows (queries) r0, r0 + 8; accumulator column 8t + 2tg + e is
// key k0 + 8t + 2tg + e.
// 3 blocks per SM at D = 64 (backward v10's dQ runs 4 at 128 registers; this one spills there)
template<int D> __host__ __device__ constexpr int gen4_dq_min_blocks() { return D == 64 ? 3 : 2; }

template<int D, bool BITS>
__global__ void __launch_bounds__(BWD10_THREADS, gen4_dq_min_blocks<D>())
attention_general4_dq_kernel(bf16* dqkv, const float* lse, const float* Dbuf, int B, int T, int NH, AttnSpec p,
                             const __grid_constant__ CUtensorMap qkv_map, const __grid_constant__ CUtensorMap dout_map) {
#ifdef HAS_WGMMA
    constexpr int BK = BWD10_ROWS, BQ = BWD10_ROWS, NT = BWD10_THREADS;
    constexpr uint32_t TILE = BWD10_ROWS * D * 2;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    const uint32_t raw = (uint32_t)__cvta_generic_to_shared(smem_raw);
    const uint32_t sbase = (raw + 1023u) & ~1023u;
    const uint32_t Qs = sbase;                  // (BQ rows) swizzled
    const uint32_t dOs = Qs + TILE;             // (BQ rows)
    const uint32_t Ks = dOs + TILE;             // 2 buffers of (BK rows)
    const uint32_t Vs = Ks + 2 * TILE;          // 2 buffers of (BK rows)
    __shared__ __align__(8) uint64_t tile_full[3];   // K / V buffers 0, 1; Q and dO
    __shared__ int red[NT / 32];
    const uint32_t bar0 = (uint32_t)__cvta_generic_to_shared(&tile_full[0]), qbar = bar0 + 16;

    const int qt = gridDim.x - 1 - blockIdx.x, h = blockIdx.y, b = blockIdx.z;
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane / 4, tg = lane % 4;
    const int q0 = qt * BQ, r0 = q0 + warp * 16 + g;
    const size_t C = (size_t)NH * D, C3 = 3 * C;
    const float sl2 = LOG2E / sqrtf((float)D);
    const float scale = 1.0f / sqrtf((float)D);
    bool row_global[2];
    for (int r = 0; r < 2; r++) row_global[r] = spec_is_global(p, r0 + 8 * r);

    auto load_kv = [&](int kt, int buf) {   // one thread
        if (tid == 0) {
            mbar_arrive_expect_bytes(bar0 + 8 * buf, 2 * TILE);
            tma_load_tile64<D>(Ks + buf * TILE, &qkv_map, C + h * D, kt * BK, b, bar0 + 8 * buf);
            tma_load_tile64<D>(Vs + buf * TILE, &qkv_map, 2 * C + h * D, kt * BK, b, bar0 + 8 * buf);
        }
    };
    const uint64_t dQd = wg_desc(Qs, 16, 1024), dOd = wg_desc(dOs, 16, 1024);
    auto kmaj = [&](uint32_t tile) { return wg_desc(tile, 16, 1024); };
    auto nmaj = [&](uint32_t tile) { return wg_desc(tile, BK * 128, 1024); };

    int kt = gen_next_key_tile<BQ, BK, NT>(p, q0, -1, T, red);   // every row has a key (SPEC §1)
    if (tid == 0) {
        for (int i = 0; i < 3; i++) mbar_init(bar0 + 8 * i, 1);
        mbar_init_fence();
        mbar_arrive_expect_bytes(qbar, 2 * TILE);
        tma_load_tile64<D>(Qs, &qkv_map, h * D, q0, b, qbar);
        tma_load_tile64<D>(dOs, &dout_map, h * D, q0, b, qbar);
    }
    __syncthreads();               // the barriers are initialised before anyone waits on them
    if (kt >= 0) load_kv(kt, 0);
    float L2[2], Di[2];
#pragma unroll
    for (int r = 0; r < 2; r++) {
        const int i = r0 + 8 * r;
        L2[r] = (i < T) ? lse[(size_t)(b * NH + h) * T + i] * LOG2E : 0.f;
        Di[r] = (i < T) ? Dbuf[(size_t)(b * NH + h) * T + i] : 0.f;
    }
    float dq[D / 2];
#pragma unroll
    for (int i = 0; i < D / 2; i++) dq[i] = 0.f;

    mbar_wait(qbar, 0);
    for (int it = 0; kt >= 0; it++) {
        if (it > 0) __syncthreads();   // everyone is done with tile it-1, whose buffers tile it+1 takes, and read red
        const int kt_next = gen_next_key_tile<BQ, BK, NT>(p, q0, kt, T, red);
        if (kt_next >= 0) load_kv(kt_next, (it + 1) & 1);
        mbar_wait(bar0 + 8 * (it & 1), (it >> 1) & 1);   // K, V of tile it
        const int buf = it & 1, k0 = kt * BK;
        const uint32_t Kb = Ks + buf * TILE, Vb = Vs + buf * TILE;
        float s[32], dp[32];
        wg_issue_abt<D, BQ, BK>(s, dQd, kmaj(Kb));    // S = Q K^T
        wg_issue_abt<D, BQ, BK>(dp, dOd, kmaj(Vb));   // dP = dO V^T
        wg_wait<1>();
        wg_fence_regs(s);
        if (!spec_block_in_band(p, q0, BQ, k0, BK, T)) {
            if constexpr (BITS) gen_mask_wg_bits(s, p, k0, r0, tg, T, gen_global_bits(p, k0), row_global);
            else                gen_mask_wg(s, p, k0, r0, tg, T, gen_global_bits(p, k0), row_global);
        }
#pragma unroll
        for (int t = 0; t < 8; t++)
#pragma unroll
            for (int r = 0; r < 2; r++)
#pragma unroll
                for (int e = 0; e < 2; e++)
                    s[4 * t + 2 * r + e] = ex2_approx(fmaf(s[4 * t + 2 * r + e], sl2, -L2[r]));
        wg_wait<0>();
        wg_fence_regs(dp);
#pragma unroll
        for (int t = 0; t < 8; t++)
#pragma unroll
            for (int r = 0; r < 2; r++)
#pragma unroll
                for (int e = 0; e < 2; e++)
                    s[4 * t + 2 * r + e] *= dp[4 * t + 2 * r + e] - Di[r];
        uint32_t sa[4][4];
        bwd10_pack(sa, s);
        wg_issue_pb<D>(dq, sa, nmaj(Kb));             // dQ += dS K
        wg_wait<0>();
        wg_fence_regs(dq);
        kt = kt_next;
    }
    bwd10_store_rows<D>(dqkv + (size_t)b * T * C3 + h * D, C3, dq, r0, tg, T, scale);
#endif
}

template<int D, bool BITS = false>
static void attention_general4_backward_d(bf16* dqkv, float* Dsum, const bf16* qkv, const bf16* out, const bf16* dout,
                                          const float* lse, int B, int T, int NH, const AttnSpec& p) {
    constexpr size_t smem = bwd10_smem<D>();
    static bool configured = false;
    static SideStream side;
    if (!configured) {
        cudaCheck(cudaFuncSetAttribute(attention_general4_dkdv_kernel<D, BITS>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
        cudaCheck(cudaFuncSetAttribute(attention_general4_dq_kernel<D, BITS>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
        side = side_stream_create();
        configured = true;
    }
    const CUtensorMap qkv_map = rows_tensor_map(qkv, B, T, 3 * NH * D, BWD10_ROWS);
    const CUtensorMap dout_map = rows_tensor_map(dout, B, T, NH * D, BWD10_ROWS);
    const dim3 grid(ceil_div(T, BWD10_ROWS), NH, B);   // a head's blocks side by side (v11)
    launch_dot<D>(Dsum, out, dout, B, T, NH);
    side_stream_fork(side);
    attention_general4_dkdv_kernel<D, BITS><<<grid, BWD10_THREADS, smem>>>(dqkv, lse, Dsum, B, T, NH, p, qkv_map, dout_map);
    cudaCheckLaunch();
    attention_general4_dq_kernel<D, BITS><<<grid, BWD10_THREADS, smem, side.stream>>>(dqkv, lse, Dsum, B, T, NH, p, qkv_map, dout_map);
    cudaCheckLaunch();
    side_stream_join(side);
}

// @copy-end attn-general-v4

// @copy-begin attn-general-v4-entry
// version 4's entry points (the programs that run version 5 copy its kernels without these)

// heads of 64 and 128 on a Hopper GPU with this binary's sm_90a code; otherwise version 3
static void attention_general4_backward(bf16* dqkv, float* Dsum, const bf16* qkv, const bf16* out, const bf16* dout,
                                        const float* lse, int B, int T, int NH, int D, const AttnSpec& p) {
    if (wgmma_available()) {
        if (D == 64) { attention_general4_backward_d<64>(dqkv, Dsum, qkv, out, dout, lse, B, T, NH, p); return; }
        if (D == 128) { attention_general4_backward_d<128>(dqkv, Dsum, qkv, out, dout, lse, B, T, NH, p); return; }
    }
    attention_general3_backward(dqkv, Dsum, qkv, out, dout, lse, B, T, NH, D, p);
}

// heads of 64 and 128 on a Hopper GPU with this binary's sm_90a code; otherwise version 3
static void attention_general4_forward(bf16* out, float* lse, const bf16* qkv, int B, int T, int NH, int D, const AttnSpec& p) {
    if (wgmma_available()) {
        if (D == 64) { attention_general4_forward_d<64>(out, lse, qkv, B, T, NH, p); return; }
        if (D == 128) { attention_general4_forward_d<128>(out, lse, qkv, B, T, NH, p); return; }
    }
    attention_general3_forward(out, lse, qkv, B, T, NH, D, p);
}
// @copy-end attn-general-v4-entry

// @copy-begin attn-general-v5
// ----------------------------------------------------------------------------
// version 5: version 4's kernels with the masks as 64-bit sets a row (spec_row_bits, spec_col_bits:
// one build a row and tile, then one bit test a score)

static void attention_general5_forward(bf16* out, float* lse, const bf16* qkv, int B, int T, int NH, int D, const AttnSpec& p) {
    if (wgmma_available()) {
        if (D == 64) { attention_general4_forward_d<64, true>(out, lse, qkv, B, T, NH, p); return; }
        if (D == 128) { attention_general4_forward_d<128, true>(out, lse, qkv, B, T, NH, p); return; }
    }
    attention_general3_forward(out, lse, qkv, B, T, NH, D, p);
}
static void attention_general5_backward(bf16* dqkv, float* Dsum, const bf16* qkv, const bf16* out, const bf16* dout,
                                        const float* lse, int B, int T, int NH, int D, const AttnSpec& p) {
    if (wgmma_available()) {
        if (D == 64) { attention_general4_backward_d<64, true>(dqkv, Dsum, qkv, out, dout, lse, B, T, NH, p); return; }
        if (D == 128) { attention_general4_backward_d<128, true>(dqkv, Dsum, qkv, out, dout, lse, B, T, NH, p); return; }
    }
    attention_general3_backward(dqkv, Dsum, qkv, out, dout, lse, B, T, NH, D, p);
}
// @copy-end attn-general-v5

// @copy-begin attn-general-v6
// ----------------------------------------------------------------------------
// version 6: a dilated pattern split in two and merged by log-sum-exp. Part A: the keys of the
// query's own residue mod d, j = i - a d for 0 <= a < W_A = ceil(W / d) + K (K = 0: every a), are a
// causal band of W_A in the subsequence of that residue (positions r, r + d, r + 2d, ...): q, k, v
// are gathered into B d sequences of ceil(T / d) rows (zeros past T: keys no real query sees) and
// run on the band kernels (forward v11, backward v13). Part B: the rest of the pattern, which is the
// pattern without its dilation minus A's pairs (skip_stride / skip_span), on version 5's kernels,
// whose walk of the undilated pattern visits only the band's tiles. out = e^(lse_A - lse) out_A +
// e^(lse_B - lse) out_B with lse = log(e^lse_A + e^lse_B); each part's backward runs with the merged
// out and lse (its P = e^(S - lse) and D_i = rowsum(dO O) are then the whole pattern's), and A's
// gradient is added into B's. Every sum in a fixed order: deterministic.

// the scratch of version 6 (grows, never shrinks; freed at exit)
static void* gen6_scratch = nullptr;
static size_t gen6_scratch_bytes = 0;
static void* gen6_get_scratch(size_t bytes) {
    if (bytes > gen6_scratch_bytes) {
        if (gen6_scratch) cudaCheck(cudaFree(gen6_scratch));
        cudaCheck(cudaMalloc(&gen6_scratch, bytes));
        gen6_scratch_bytes = bytes;
    }
    return gen6_scratch;
}

// the patterns version 6 can take: dilated, heads of 64 or 128 on a Hopper GPU with this binary's
// sm_90a code (the band kernels' and version 5's condition; the merge's rows of D / 8 threads then
// never cross a warp), a stride no longer than the sequence (the scratch holds B d ceil(T / d) rows)
// and at most 65535 subsequences (the band kernels' grid.z)
static bool gen6_can(const AttnSpec& p, int B, int T, int D) {
    return p.dilation > 1 && p.window > 0 && p.dilation <= T && (long long)B * p.dilation <= 65535 &&
           (D == 64 || D == 128) && wgmma_available();
}

// and those where the split pays for its ~27 ns a token of gathers, merge and second walk (H100,
// 12 x 64, forward+backward): the dilated keys reach far. Measured (the split against version 5):
// W = 256 + 64 keys at stride 4 (a reach of 256) 0.57x; seeds/001's pattern (a row's dilated keys
// reach (T - W) / 2 back on average) 1.06x at T = 1024 (reach 464), 1.9x at 2048, 3.2x at 4096.
// Between 256 and 464 the ratio crosses 1 near 440 if it runs straight: the rule takes 448.
// Subsequences shorter than a 64-row tile waste most of each tile: the split needs T >= 64 d.
static bool gen6_pays(const AttnSpec& p, int T) {
    const long long reach = p.dilated_keys > 0 ? (long long)p.dilated_keys * p.dilation : ((long long)T - p.window) / 2;
    return reach >= 448 && (long long)T >= 64LL * p.dilation;
}

// the split: part A's band width in its subsequence (0: unlimited), and part B's spec
static int gen6_band(const AttnSpec& p) {
    return p.dilated_keys == 0 ? 0 : (p.window + p.dilation - 1) / p.dilation + p.dilated_keys;
}
static AttnSpec gen6_rest(const AttnSpec& p) {
    AttnSpec r = p;
    r.dilation = 1;
    r.dilated_keys = 0;
    r.skip_stride = p.dilation;
    r.skip_span = gen6_band(p) * p.dilation;   // 0: unlimited
    return r;
}

// dst (B d, Ts, cols) <- src (B, T, cols): row (b d + r, a) is row (b, a d + r), zeros past T. cols a
// multiple of 8 (16-byte moves).
__global__ void gen6_gather_kernel(bf16* dst, const bf16* src, int B, int T, int d, int Ts, int cols) {
    const size_t n = (size_t)B * d * Ts * (cols / 8);
    for (size_t x = blockIdx.x * (size_t)blockDim.x + threadIdx.x; x < n; x += (size_t)gridDim.x * blockDim.x) {
        const size_t row = x / (cols / 8);
        const int c = (int)(x % (cols / 8)), a = (int)(row % Ts), bd = (int)(row / Ts), b = bd / d, r = bd % d;
        const int t = a * d + r;
        uint4 v = make_uint4(0u, 0u, 0u, 0u);
        if (t < T) v = *reinterpret_cast<const uint4*>(src + ((size_t)b * T + t) * cols + 8 * c);
        *reinterpret_cast<uint4*>(dst + row * cols + 8 * c) = v;
    }
}

// dst (B d, NH, Ts) <- src (B, NH, T), zeros past T (for the padding rows, whose dO is zero)
__global__ void gen6_gather_lse_kernel(float* dst, const float* src, int B, int T, int NH, int d, int Ts) {
    const size_t n = (size_t)B * d * NH * Ts;
    for (size_t x = blockIdx.x * (size_t)blockDim.x + threadIdx.x; x < n; x += (size_t)gridDim.x * blockDim.x) {
        const int a = (int)(x % Ts), h = (int)(x / Ts % NH), bd = (int)(x / ((size_t)Ts * NH)), b = bd / d, r = bd % d;
        const int t = a * d + r;
        dst[x] = t < T ? src[((size_t)b * NH + h) * T + t] : 0.f;
    }
}

// dst (B, T, cols) += src (B d, Ts, cols) at the gathered rows: both already bf16, added in float and
// rounded again (the two parts' gradients are rounded once each before the sum)
__global__ void gen6_scatter_add_kernel(bf16* dst, const bf16* src, int B, int T, int d, int Ts, int cols) {
    const size_t n = (size_t)B * T * (cols / 8);
    for (size_t x = blockIdx.x * (size_t)blockDim.x + threadIdx.x; x < n; x += (size_t)gridDim.x * blockDim.x) {
        const size_t row = x / (cols / 8);
        const int c = (int)(x % (cols / 8)), t = (int)(row % T), b = (int)(row / T);
        const size_t srow = ((size_t)b * d + t % d) * Ts + t / d;
        uint4 u = *reinterpret_cast<const uint4*>(dst + row * cols + 8 * c);
        const uint4 w = *reinterpret_cast<const uint4*>(src + srow * cols + 8 * c);
        bf16* ud = reinterpret_cast<bf16*>(&u);
        const bf16* wd = reinterpret_cast<const bf16*>(&w);
#pragma unroll
        for (int e = 0; e < 8; e++) ud[e] = __float2bfloat16(__bfloat162float(ud[e]) + __bfloat162float(wd[e]));
        *reinterpret_cast<uint4*>(dst + row * cols + 8 * c) = u;
    }
}

// out, lse (part B's, in place) <- the merge with part A's (gathered) out_a, lse_a; both outs are
// bf16 already, so the merged out is rounded twice. D / 8 threads a (t, h) row, all in one warp
// (D = 64 or 128, gen6_can): they read lse before the first of them writes it.
__global__ void gen6_merge_kernel(bf16* out, float* lse, const bf16* out_a, const float* lse_a,
                                  int B, int T, int NH, int D, int d, int Ts) {
    const int per_row = D / 8;
    const size_t x = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    const size_t row = x / per_row;   // (b, t, h)
    const int c = (int)(x % per_row);
    const bool live = row < (size_t)B * T * NH;
    float wa = 0.f, wb = 0.f, l = 0.f;
    size_t lse_at = 0, arow = 0;
    if (live) {
        const int h = (int)(row % NH), t = (int)(row / NH % T), b = (int)(row / ((size_t)NH * T));
        const size_t ai = ((size_t)b * d + t % d) * Ts + t / d;   // the gathered row
        lse_at = ((size_t)b * NH + h) * T + t;
        arow = ai * NH + h;
        const float la = lse_a[((size_t)b * d + t % d) * NH * Ts + (size_t)h * Ts + t / d], lb = lse[lse_at];
        const float m = fmaxf(la, lb);   // la is finite: part A holds the diagonal
        const float ea = expf(la - m), eb = expf(lb - m);   // lb = -inf (no key in part B): eb = 0
        l = m + logf(ea + eb);
        wa = ea / (ea + eb);
        wb = eb / (ea + eb);
    }
    __syncwarp();
    if (!live) return;
    if (c == 0) lse[lse_at] = l;
    uint4 u = *reinterpret_cast<const uint4*>(out + row * D + 8 * c);
    const uint4 v = *reinterpret_cast<const uint4*>(out_a + arow * D + 8 * c);
    bf16* ud = reinterpret_cast<bf16*>(&u);
    const bf16* vd = reinterpret_cast<const bf16*>(&v);
#pragma unroll
    for (int e = 0; e < 8; e++) ud[e] = __float2bfloat16(wb * __bfloat162float(ud[e]) + wa * __bfloat162float(vd[e]));
    *reinterpret_cast<uint4*>(out + row * D + 8 * c) = u;
}

static unsigned gen6_blocks(size_t n) { return (unsigned)std::min<size_t>(ceil_div(n, (size_t)256), 8192); }

static void gen6_forward(bf16* out, float* lse, const bf16* qkv, int B, int T, int NH, int D, const AttnSpec& p) {
    const int d = p.dilation, Ts = ceil_div(T, d), C = NH * D;
    const size_t rows = (size_t)B * d * Ts;
    char* s = (char*)gen6_get_scratch(rows * 4 * C * sizeof(bf16) + rows * NH * sizeof(float));
    bf16* qkv_a = (bf16*)s;                      // (B d, Ts, 3, NH, D)
    bf16* out_a = qkv_a + rows * 3 * C;          // (B d, Ts, NH, D)
    float* lse_a = (float*)(out_a + rows * C);   // (B d, NH, Ts)
    gen6_gather_kernel<<<gen6_blocks(rows * 3 * C / 8), 256>>>(qkv_a, qkv, B, T, d, Ts, 3 * C);
    cudaCheckLaunch();
    const int WA = gen6_band(p);
    if (D == 64) attention_forward11<64>(out_a, lse_a, qkv_a, B * d, Ts, NH, WA, 0);
    else         attention_forward11<128>(out_a, lse_a, qkv_a, B * d, Ts, NH, WA, 0);
    const AttnSpec rest = gen6_rest(p);
    if (D == 64) attention_general4_forward_d<64, true>(out, lse, qkv, B, T, NH, rest);
    else         attention_general4_forward_d<128, true>(out, lse, qkv, B, T, NH, rest);
    const size_t threads = (size_t)B * T * NH * (D / 8);
    gen6_merge_kernel<<<(unsigned)ceil_div(threads, (size_t)256), 256>>>(out, lse, out_a, lse_a, B, T, NH, D, d, Ts);
    cudaCheckLaunch();
}

static void gen6_backward(bf16* dqkv, float* Dsum, const bf16* qkv, const bf16* out, const bf16* dout,
                          const float* lse, int B, int T, int NH, int D, const AttnSpec& p) {
    const int d = p.dilation, Ts = ceil_div(T, d), C = NH * D;
    const size_t rows = (size_t)B * d * Ts;
    char* s = (char*)gen6_get_scratch(rows * 8 * C * sizeof(bf16) + rows * NH * 2 * sizeof(float));
    bf16* qkv_a = (bf16*)s;                       // (B d, Ts, 3, NH, D)
    bf16* dqkv_a = qkv_a + rows * 3 * C;          // (B d, Ts, 3, NH, D)
    bf16* out_a = dqkv_a + rows * 3 * C;          // (B d, Ts, NH, D): the merged out, gathered
    bf16* dout_a = out_a + rows * C;              // (B d, Ts, NH, D)
    float* lse_a = (float*)(dout_a + rows * C);   // (B d, NH, Ts): the merged lse, gathered
    float* dsum_a = lse_a + rows * NH;            // (B d, NH, Ts)
    gen6_gather_kernel<<<gen6_blocks(rows * 3 * C / 8), 256>>>(qkv_a, qkv, B, T, d, Ts, 3 * C);
    cudaCheckLaunch();
    gen6_gather_kernel<<<gen6_blocks(rows * C / 8), 256>>>(out_a, out, B, T, d, Ts, C);
    cudaCheckLaunch();
    gen6_gather_kernel<<<gen6_blocks(rows * C / 8), 256>>>(dout_a, dout, B, T, d, Ts, C);
    cudaCheckLaunch();
    gen6_gather_lse_kernel<<<gen6_blocks(rows * NH), 256>>>(lse_a, lse, B, T, NH, d, Ts);
    cudaCheckLaunch();
    const int WA = gen6_band(p);
    if (D == 64) attention_backward13<64>(dqkv_a, dsum_a, qkv_a, out_a, dout_a, lse_a, B * d, Ts, NH, WA, 0);
    else         attention_backward13<128>(dqkv_a, dsum_a, qkv_a, out_a, dout_a, lse_a, B * d, Ts, NH, WA, 0);
    const AttnSpec rest = gen6_rest(p);
    if (D == 64) attention_general4_backward_d<64, true>(dqkv, Dsum, qkv, out, dout, lse, B, T, NH, rest);
    else         attention_general4_backward_d<128, true>(dqkv, Dsum, qkv, out, dout, lse, B, T, NH, rest);
    gen6_scatter_add_kernel<<<gen6_blocks((size_t)B * T * 3 * C / 8), 256>>>(dqkv, dqkv_a, B, T, d, Ts, 3 * C);
    cudaCheckLaunch();
}

// dilated patterns whose keys reach far (gen6_pays) as above; every other one as version 5
static void attention_general6_forward(bf16* out, float* lse, const bf16* qkv, int B, int T, int NH, int D, const AttnSpec& p) {
    if (gen6_can(p, B, T, D) && gen6_pays(p, T)) gen6_forward(out, lse, qkv, B, T, NH, D, p);
    else                    attention_general5_forward(out, lse, qkv, B, T, NH, D, p);
}
static void attention_general6_backward(bf16* dqkv, float* Dsum, const bf16* qkv, const bf16* out, const bf16* dout,
                                        const float* lse, int B, int T, int NH, int D, const AttnSpec& p) {
    if (gen6_can(p, B, T, D) && gen6_pays(p, T)) gen6_backward(dqkv, Dsum, qkv, out, dout, lse, B, T, NH, D, p);
    else                    attention_general5_backward(dqkv, Dsum, qkv, out, dout, lse, B, T, NH, D, p);
}
// @copy-end attn-general-v6

// @copy-begin attn-general-v7
// ----------------------------------------------------------------------------
// version 7: the global positions split off and merged by log-sum-exp (the Longformer pattern).
// Version 5 visits, for every 64-query tile, each key tile that holds a global key (1 column of 64
// used), and each tile holding a non-causal global query walks all of T on one block: with 16
// globals the visits per token grow 2.5x from T = 1024 to 16384 and the long walks sit on single
// blocks. Here part 1 is the pattern without its global positions (gen7_band: band, lookahead,
// sinks), on the band kernels (forward v11, backward v13) when it is causal and on version 5's
// kernels otherwise, which then visit only the band's tiles. Part 2 is the pairs the globals add
// (gen7_part2), on CUDA-core kernels over tiles of rows or keys staged in shared memory (GEN7_TILE;
// 64 rows in the narrow forward): a narrow row (any row but a non-causal global query) adds at most
// G keys, its global keys outside its band; a wide row (a non-causal global query) adds every key
// outside its band, a partial (max, sum, weighted values) per key tile merged in a fixed order. out
// and lse are merged as in version 6. The backward runs part 1's backward with the merged out and
// lse (its P and D_i are then the whole pattern's), then adds part 2's gradients: the narrow rows'
// dQ (local to a row), the global keys' dK and dV from the narrow rows (a partial per row tile,
// reduced in order), every key's dK and dV from the wide rows (local to a key), the wide rows' dQ
// (a partial per key tile, reduced in order). Every sum in a fixed order: deterministic. Part 2's
// work is G T pairs a head each way, so the time per token follows the pairs at any T.

#define GEN7_TILE 128   // rows (narrow backward) or keys (wide rows) a part-2 block stages: 4 warps of 32

// part 1: the pattern without its global positions
static AttnSpec gen7_band(const AttnSpec& p) {
    AttnSpec r = p;
    r.num_globals = 0;
    return r;
}

// a wide row: a non-causal global query, which sees every key
__host__ __device__ inline bool gen7_wide(const AttnSpec& p, int i) { return !p.causal && spec_is_global(p, i); }

// global slot g counts once: its position lies in [0, T) and no earlier slot holds it
__host__ __device__ inline bool gen7_slot(const AttnSpec& p, int g, int T) {
    const int pos = p.globals[g];
    if (pos < 0 || pos >= T) return false;
    for (int h = 0; h < g; h++) if (p.globals[h] == pos) return false;
    return true;
}

// part 2: the pairs the pattern allows and its band (p0 = gen7_band(p)) does not. For a narrow row
// they are global keys; for a wide row every key outside p0's row (test/test_attention_walk.cu).
__host__ __device__ inline bool gen7_part2(const AttnSpec& p, const AttnSpec& p0, int i, int j) {
    return spec_allowed(p, i, j) && !spec_allowed(p0, i, j);
}

__device__ inline float gen7_warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffff, v, o));
    return v;
}

// the slots that count (gen7_slot), and those that are wide rows, as 64-bit sets (one warp's ballots)
__device__ inline void gen7_slot_sets(const AttnSpec& p, int T, unsigned long long& slots, unsigned long long& wide) {
    slots = wide = 0ull;
    #pragma unroll
    for (int kk = 0; kk < 2; kk++) {
        const int g = threadIdx.x % 32 + 32 * kk;
        const bool s = g < p.num_globals && gen7_slot(p, g, T);
        slots |= (unsigned long long)__ballot_sync(0xffffffff, s) << (32 * kk);
        wide |= (unsigned long long)__ballot_sync(0xffffffff, s && gen7_wide(p, p.globals[g])) << (32 * kk);
    }
}

// Rows of a head into shared memory, 16 bytes a thread and step: dst row r (stride SD bf16, even) <-
// the D values at base + (row(r)) * stride, row(r) = r0 + r, or the r-th global position when pos is
// given; zeros for rows past T or slots outside the set.
template<int D>
__device__ inline void gen7_stage(bf16* dst, int SD, const bf16* base, size_t stride, int r0, int n, int T,
                                  const int* pos = nullptr, unsigned long long set = ~0ull) {
    constexpr int V = D / 8;
#pragma unroll 4
    for (int x = threadIdx.x; x < n * V; x += blockDim.x) {
        const int r = x / V, c = x % V, t = pos ? pos[r] : r0 + r;
        uint4 u = make_uint4(0u, 0u, 0u, 0u);
        if (t < T && (!pos || ((set >> r) & 1ull))) u = *reinterpret_cast<const uint4*>(base + (size_t)t * stride + 8 * c);
        unsigned* d = reinterpret_cast<unsigned*>(dst + r * SD + 8 * c);
        d[0] = u.x; d[1] = u.y; d[2] = u.z; d[3] = u.w;
    }
}

// the dot product of two bf16 rows in shared memory (4-byte aligned)
template<int D>
__device__ inline float gen7_dot(const bf16* a, const bf16* b) {
    float s0 = 0.f, s1 = 0.f;
#pragma unroll 8
    for (int e = 0; e < D; e += 4) {
        const float2 a0 = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(a + e));
        const float2 b0 = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(b + e));
        const float2 a1 = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(a + e + 2));
        const float2 b1 = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(b + e + 2));
        s0 += a0.x * b0.x + a0.y * b0.y;
        s1 += a1.x * b1.x + a1.y * b1.y;
    }
    return s0 + s1;
}

// rows of D bf16 in shared memory padded to D + 2: a lane reading its own row and lanes reading one
// row's consecutive values both hit distinct banks (the row stride is an odd number of words)
template<int D> __host__ __device__ constexpr int gen7_sd() { return D + 2; }

// shared memory of the narrow forward: the globals' K and V (G rows), the tile's q and out (64 rows)
template<int D>
static size_t gen7_narrow_fwd_smem(int G) { return (size_t)(2 * G + 2 * 64) * gen7_sd<D>() * sizeof(bf16); }

// narrow rows: out, lse (part 1's, in place) <- merged with each row's global keys outside its band.
// grid (ceil(T / 64), NH, B), 4 warps, each a row at a time, lanes over the global keys.
template<int D>
__global__ void __launch_bounds__(128) gen7_narrow_forward_kernel(bf16* out, float* lse, const bf16* qkv, int T, int NH,
                                                                  AttnSpec p, AttnSpec p0) {
    constexpr int DPL = D / 32, SD = gen7_sd<D>();
    extern __shared__ __align__(16) unsigned char gen7_sh[];
    const int G = p.num_globals;
    bf16* ks = reinterpret_cast<bf16*>(gen7_sh);   // (G, SD) the globals' keys
    bf16* vs = ks + G * SD;                        // (G, SD) and values
    bf16* qs = vs + G * SD;                        // (64, SD) the tile's q
    bf16* os = qs + 64 * SD;                       // (64, SD) and part 1's out
    const int h = blockIdx.y, b = blockIdx.z, warp = threadIdx.x / 32, lane = threadIdx.x % 32, r0 = blockIdx.x * 64;
    const size_t C = (size_t)NH * D;
    const float scale = rsqrtf((float)D);
    unsigned long long slots, wide;
    gen7_slot_sets(p, T, slots, wide);
    const bf16* head = qkv + (size_t)b * T * 3 * C + (size_t)h * D;
    gen7_stage<D>(ks, SD, head + C, 3 * C, 0, G, T, p.globals, slots);
    gen7_stage<D>(vs, SD, head + 2 * C, 3 * C, 0, G, T, p.globals, slots);
    gen7_stage<D>(qs, SD, head, 3 * C, r0, 64, T);
    gen7_stage<D>(os, SD, out + (size_t)b * T * C + (size_t)h * D, C, r0, 64, T);
    __syncthreads();
    for (int r = warp; r < 64; r += 4) {
        const int i = r0 + r;
        if (i >= T) break;
        if (gen7_wide(p, i)) continue;   // the wide rows' kernels take it
        bool use[2];
        #pragma unroll
        for (int kk = 0; kk < 2; kk++) {
            const int g = lane + 32 * kk;
            use[kk] = ((slots >> g) & 1ull) && gen7_part2(p, p0, i, p.globals[g]);
        }
        if (!__any_sync(0xffffffff, use[0] || use[1])) continue;   // no global key outside the band
        float s[2];
        #pragma unroll
        for (int kk = 0; kk < 2; kk++) s[kk] = use[kk] ? gen7_dot<D>(qs + r * SD, ks + (lane + 32 * kk) * SD) * scale : -INFINITY;
        const float m = gen7_warp_max(fmaxf(s[0], s[1]));   // finite: some lane has a key
        float ex[2];
        #pragma unroll
        for (int kk = 0; kk < 2; kk++) ex[kk] = use[kk] ? expf(s[kk] - m) : 0.f;
        const float l = general_warp_sum(ex[0] + ex[1]);
        float o[DPL];
#pragma unroll
        for (int k = 0; k < DPL; k++) o[k] = 0.f;
        for (int g = 0; g < G; g++) {   // every slot in order; those without a pair weigh 0
            const float w = __shfl_sync(0xffffffff, g < 32 ? ex[0] : ex[1], g & 31);
            if (w != 0.f) {
#pragma unroll
                for (int k = 0; k < DPL; k++) o[k] += w * __bfloat162float(vs[g * SD + lane + 32 * k]);
            }
        }
        const size_t li = ((size_t)b * NH + h) * T + i;
        const float l1 = lse[li], l2 = m + logf(l), mm = fmaxf(l1, l2);
        const float w1 = expf(l1 - mm), w2 = expf(l2 - mm), inv = 1.f / (w1 + w2);
        bf16* orow = out + ((size_t)b * T + i) * C + (size_t)h * D;
#pragma unroll
        for (int k = 0; k < DPL; k++) {
            const int e = lane + 32 * k;
            orow[e] = __float2bfloat16((w1 * __bfloat162float(os[r * SD + e]) + w2 * o[k] / l) * inv);
        }
        __syncwarp();   // every lane has read lse[li]
        if (lane == 0) lse[li] = mm + logf(w1 + w2);
    }
}

// shared memory of the wide forward: the tile's K and V (GEN7_TILE rows), the wide rows' q (G rows),
// and the 4 warps' partial sums (4, D) fp32
template<int D>
static size_t gen7_wide_fwd_smem(int G) {
    return (size_t)(2 * GEN7_TILE + G) * gen7_sd<D>() * sizeof(bf16) + ((size_t)4 * D + 8) * sizeof(float);
}

// wide rows, forward: one block a (key tile, b h), each warp 32 keys (a key a lane for the scores,
// lanes over dims for the values), each wide row in turn. part (B NH, G, tiles, D + 2): the tile's
// max m, sum l, then the sum of e^(s - m) v (unnormalized).
template<int D>
__global__ void __launch_bounds__(128) gen7_wide_forward_kernel(float* part, const bf16* qkv, int T, int NH,
                                                                AttnSpec p, AttnSpec p0) {
    constexpr int DPL = D / 32, SD = gen7_sd<D>();
    extern __shared__ __align__(16) unsigned char gen7_sh[];
    const int G = p.num_globals;
    bf16* kc = reinterpret_cast<bf16*>(gen7_sh);                     // (GEN7_TILE, SD) the tile's keys
    bf16* vc = kc + GEN7_TILE * SD;                                   // (GEN7_TILE, SD) and values
    bf16* qg = vc + GEN7_TILE * SD;                                   // (G, SD) the wide rows' q
    float* wacc = reinterpret_cast<float*>(qg + G * SD);              // (4, D)
    float* wm = wacc + 4 * D;                                         // (4)
    float* wl = wm + 4;                                               // (4)
    const int c = blockIdx.x, tiles = gridDim.x, bh = blockIdx.y, b = bh / NH, h = bh % NH;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, j0 = c * GEN7_TILE;
    const size_t C = (size_t)NH * D;
    const float scale = rsqrtf((float)D);
    unsigned long long slots, wide;
    gen7_slot_sets(p, T, slots, wide);
    const bf16* head = qkv + (size_t)b * T * 3 * C + (size_t)h * D;
    gen7_stage<D>(kc, SD, head + C, 3 * C, j0, GEN7_TILE, T);
    gen7_stage<D>(vc, SD, head + 2 * C, 3 * C, j0, GEN7_TILE, T);
    gen7_stage<D>(qg, SD, head, 3 * C, 0, G, T, p.globals, wide);
    __syncthreads();
    const int kr = warp * 32 + lane, j = j0 + kr;   // this lane's key
    for (int g = 0; g < G; g++) {
        if (!((wide >> g) & 1ull)) continue;   // gen7_wide_merge_kernel skips the same slots
        const bool use = j < T && !spec_allowed(p0, p.globals[g], j);   // a wide row sees every key: part 2 is what p0 leaves
        const float s = use ? gen7_dot<D>(qg + g * SD, kc + kr * SD) * scale : -INFINITY;
        const float m = gen7_warp_max(s);   // -inf when no lane has a key
        const float ex = use ? expf(s - m) : 0.f;
        const float l = general_warp_sum(ex);
        float o[DPL];
#pragma unroll
        for (int k = 0; k < DPL; k++) o[k] = 0.f;
        for (int t = 0; t < 32; t++) {
            const float w = __shfl_sync(0xffffffff, ex, t);
            if (w != 0.f) {
#pragma unroll
                for (int k = 0; k < DPL; k++) o[k] += w * __bfloat162float(vc[(warp * 32 + t) * SD + lane + 32 * k]);
            }
        }
        if (lane == 0) { wm[warp] = m; wl[warp] = l; }
#pragma unroll
        for (int k = 0; k < DPL; k++) wacc[warp * D + lane + 32 * k] = o[k];
        __syncthreads();
        const float M = fmaxf(fmaxf(wm[0], wm[1]), fmaxf(wm[2], wm[3]));
        float* dst = part + (((size_t)bh * G + g) * tiles + c) * (D + 2);
        for (int x = threadIdx.x; x < D; x += blockDim.x) {
            float a = 0.f;
            for (int w = 0; w < 4; w++) if (wm[w] > -INFINITY) a += expf(wm[w] - M) * wacc[w * D + x];
            dst[2 + x] = a;
        }
        if (threadIdx.x == 0) {
            float L = 0.f;
            for (int w = 0; w < 4; w++) if (wm[w] > -INFINITY) L += expf(wm[w] - M) * wl[w];
            dst[0] = M;
            dst[1] = L;
        }
        __syncthreads();   // wm, wl, wacc are the next row's
    }
}

// wide rows: out, lse (part 1's) <- merged with the row's tiles in order. grid (G, B NH), one warp.
template<int D>
__global__ void gen7_wide_merge_kernel(bf16* out, float* lse, const float* part, int T, int NH, int tiles, AttnSpec p) {
    constexpr int DPL = D / 32;
    const int g = blockIdx.x, bh = blockIdx.y, b = bh / NH, h = bh % NH, lane = threadIdx.x, i = p.globals[g];
    if (!gen7_slot(p, g, T) || !gen7_wide(p, i)) return;
    const size_t li = (size_t)bh * T + i;
    bf16* orow = out + ((size_t)b * T + i) * NH * D + (size_t)h * D;
    float M = lse[li], L = 1.f, a[DPL];   // part 1 as (m = lse, l = 1, sum = out)
#pragma unroll
    for (int k = 0; k < DPL; k++) a[k] = __bfloat162float(orow[lane + 32 * k]);
    for (int c = 0; c < tiles; c++) {
        const float* src = part + (((size_t)bh * p.num_globals + g) * tiles + c) * (D + 2);
        const float mc = src[0];
        if (mc == -INFINITY) continue;
        const float nm = fmaxf(M, mc), f1 = expf(M - nm), f2 = expf(mc - nm);
        L = L * f1 + src[1] * f2;
#pragma unroll
        for (int k = 0; k < DPL; k++) a[k] = a[k] * f1 + src[2 + lane + 32 * k] * f2;
        M = nm;
    }
#pragma unroll
    for (int k = 0; k < DPL; k++) orow[lane + 32 * k] = __float2bfloat16(a[k] / L);
    __syncwarp();
    if (lane == 0) lse[li] = M + logf(L);
}

// shared memory of the narrow backward: the globals' K and V (G rows), the tile's q, dO and dQ
// (GEN7_TILE rows each), P and dS (GEN7_TILE, G) fp32, the rows' lse and D_i
template<int D>
static size_t gen7_narrow_bwd_smem(int G) {
    return (size_t)(2 * G + 3 * GEN7_TILE) * gen7_sd<D>() * sizeof(bf16) + ((size_t)2 * GEN7_TILE * G + 2 * GEN7_TILE) * sizeof(float);
}

// narrow rows, backward: one block a (tile of GEN7_TILE rows, h, b), 4 warps. First each warp takes
// its 32 rows in turn (lanes over the global keys): P and dS into shared memory, the row's dQ from its
// global keys added to part 1's; then the tile's dK and dV of every global slot, sums over its rows
// in order, go to part_dkv (B NH, tiles, G, 2 D).
template<int D>
__global__ void __launch_bounds__(128) gen7_narrow_backward_kernel(bf16* dqkv, float* part_dkv, const bf16* qkv, const bf16* dout,
                                                                   const float* lse, const float* Dsum, int T, int NH,
                                                                   AttnSpec p, AttnSpec p0) {
    constexpr int DPL = D / 32, SD = gen7_sd<D>();
    extern __shared__ __align__(16) unsigned char gen7_sh[];
    const int G = p.num_globals;
    bf16* ks = reinterpret_cast<bf16*>(gen7_sh);   // (G, SD) the globals' keys
    bf16* vs = ks + G * SD;                        // (G, SD) and values
    bf16* qr = vs + G * SD;                        // (GEN7_TILE, SD) the rows' q
    bf16* gr = qr + GEN7_TILE * SD;                // (GEN7_TILE, SD) dO
    bf16* dqr = gr + GEN7_TILE * SD;               // (GEN7_TILE, SD) and part 1's dQ
    float* ps = reinterpret_cast<float*>(dqr + GEN7_TILE * SD);   // (GEN7_TILE, G) P
    float* dss = ps + GEN7_TILE * G;               // (GEN7_TILE, G) dS
    float* lr = dss + GEN7_TILE * G;               // (GEN7_TILE) lse
    float* dr = lr + GEN7_TILE;                    // (GEN7_TILE) D_i
    const int h = blockIdx.y, b = blockIdx.z, warp = threadIdx.x / 32, lane = threadIdx.x % 32, bh = b * NH + h;
    const int r0 = blockIdx.x * GEN7_TILE;
    const size_t C = (size_t)NH * D;
    const float scale = rsqrtf((float)D);
    unsigned long long slots, wide;
    gen7_slot_sets(p, T, slots, wide);
    const bf16* head = qkv + (size_t)b * T * 3 * C + (size_t)h * D;
    bf16* dhead = dqkv + (size_t)b * T * 3 * C + (size_t)h * D;
    gen7_stage<D>(ks, SD, head + C, 3 * C, 0, G, T, p.globals, slots);
    gen7_stage<D>(vs, SD, head + 2 * C, 3 * C, 0, G, T, p.globals, slots);
    gen7_stage<D>(qr, SD, head, 3 * C, r0, GEN7_TILE, T);
    gen7_stage<D>(gr, SD, dout + (size_t)b * T * C + (size_t)h * D, C, r0, GEN7_TILE, T);
    gen7_stage<D>(dqr, SD, dhead, 3 * C, r0, GEN7_TILE, T);
    for (int r = threadIdx.x; r < GEN7_TILE; r += blockDim.x) {
        const bool in = r0 + r < T;
        lr[r] = in ? lse[(size_t)bh * T + r0 + r] : 0.f;
        dr[r] = in ? Dsum[(size_t)bh * T + r0 + r] : 0.f;
    }
    __syncthreads();
    for (int r = warp * 32; r < warp * 32 + 32; r++) {
        const int i = r0 + r;
        bool use[2] = {false, false};
        if (i < T && !gen7_wide(p, i)) {
            #pragma unroll
            for (int kk = 0; kk < 2; kk++) {
                const int g = lane + 32 * kk;
                use[kk] = ((slots >> g) & 1ull) && gen7_part2(p, p0, i, p.globals[g]);
            }
        }
        float pr[2] = {0.f, 0.f}, ds[2] = {0.f, 0.f};
        #pragma unroll
        for (int kk = 0; kk < 2; kk++) {
            if (use[kk]) {
                const int g = lane + 32 * kk;
                const float s = gen7_dot<D>(qr + r * SD, ks + g * SD) * scale;
                const float dp = gen7_dot<D>(gr + r * SD, vs + g * SD);
                pr[kk] = expf(s - lr[r]);
                ds[kk] = pr[kk] * (dp - dr[r]) * scale;
            }
            if (lane + 32 * kk < G) { ps[r * G + lane + 32 * kk] = pr[kk]; dss[r * G + lane + 32 * kk] = ds[kk]; }
        }
        if (!__any_sync(0xffffffff, use[0] || use[1])) continue;   // the row keeps part 1's dQ
        float dq[DPL];
#pragma unroll
        for (int k = 0; k < DPL; k++) dq[k] = 0.f;
        for (int g = 0; g < G; g++) {   // in slot order, lanes over dims
            const float wd = __shfl_sync(0xffffffff, g < 32 ? ds[0] : ds[1], g & 31);
            if (wd != 0.f) {
#pragma unroll
                for (int k = 0; k < DPL; k++) dq[k] += wd * __bfloat162float(ks[g * SD + lane + 32 * k]);
            }
        }
        bf16* dqrow = dhead + (size_t)i * 3 * C;
#pragma unroll
        for (int k = 0; k < DPL; k++) {
            const int e = lane + 32 * k;
            dqrow[e] = __float2bfloat16(__bfloat162float(dqr[r * SD + e]) + dq[k]);
        }
    }
    __syncthreads();
    // the tile's dK (which = 0) and dV (1) of each slot: sums over the rows in order
    float* dst = part_dkv + ((size_t)bh * gridDim.x + blockIdx.x) * G * 2 * D;
    for (int x = threadIdx.x; x < 2 * G * D; x += blockDim.x) {
        const int which = x / (G * D), g = x / D % G, e = x % D;
        const float* w = which ? ps : dss;
        const bf16* rows = which ? gr : qr;
        float a = 0.f;
        for (int r = 0; r < GEN7_TILE; r++) a += w[r * G + g] * __bfloat162float(rows[r * SD + e]);
        dst[(size_t)g * 2 * D + which * D + e] = a;
    }
}

// the global keys' dK, dV from the narrow rows: part_dkv summed over the row tiles in order, added
// into dqkv. grid (G, B NH), 2 D threads.
template<int D>
__global__ void gen7_narrow_reduce_kernel(bf16* dqkv, const float* part_dkv, int T, int NH, int tiles, AttnSpec p) {
    const int g = blockIdx.x, bh = blockIdx.y, b = bh / NH, h = bh % NH, x = threadIdx.x, G = p.num_globals;
    if (!gen7_slot(p, g, T)) return;
    float a = 0.f;
    for (int c = 0; c < tiles; c++) a += part_dkv[((size_t)bh * tiles + c) * G * 2 * D + (size_t)g * 2 * D + x];
    const size_t C = (size_t)NH * D;
    bf16* el = dqkv + ((size_t)b * T + p.globals[g]) * 3 * C + C + (x < D ? 0 : C) + (size_t)h * D + x % D;
    *el = __float2bfloat16(__bfloat162float(*el) + a);
}

// shared memory of the wide backward: the tile's K and V (GEN7_TILE rows), the wide rows' q and dO
// (G rows each), P and dS (G, GEN7_TILE) fp32, the wide rows' lse and D_i
template<int D>
static size_t gen7_wide_bwd_smem(int G) {
    return (size_t)(2 * GEN7_TILE + 2 * G) * gen7_sd<D>() * sizeof(bf16) + ((size_t)2 * G * GEN7_TILE + 2 * G) * sizeof(float);
}

// wide rows, backward: one block a (key tile, h, b), 4 warps of 32 keys. First the scores, a key a
// lane, each wide row in turn: P and dS into shared memory; then every key's dK, dV from the wide
// rows (sums over the rows in slot order, lanes over dims) added into dqkv, and each wide row's dQ
// over the tile (a sum over its keys in order) into part_dq (B NH, G, tiles, D).
template<int D>
__global__ void __launch_bounds__(128) gen7_wide_backward_kernel(bf16* dqkv, float* part_dq, const bf16* qkv, const bf16* dout,
                                                                 const float* lse, const float* Dsum, int T, int NH,
                                                                 AttnSpec p, AttnSpec p0) {
    constexpr int DPL = D / 32, SD = gen7_sd<D>();
    extern __shared__ __align__(16) unsigned char gen7_sh[];
    const int G = p.num_globals;
    bf16* kc = reinterpret_cast<bf16*>(gen7_sh);   // (GEN7_TILE, SD) the tile's keys
    bf16* vc = kc + GEN7_TILE * SD;                // (GEN7_TILE, SD) and values
    bf16* qg = vc + GEN7_TILE * SD;                // (G, SD) the wide rows' q
    bf16* gg = qg + G * SD;                        // (G, SD) and dO
    float* ps = reinterpret_cast<float*>(gg + G * SD);   // (G, GEN7_TILE) P
    float* dss = ps + G * GEN7_TILE;               // (G, GEN7_TILE) dS
    float* lg = dss + G * GEN7_TILE;               // (G) the wide rows' lse
    float* dg = lg + G;                            // (G) and D_i
    const int h = blockIdx.y, b = blockIdx.z, warp = threadIdx.x / 32, lane = threadIdx.x % 32, bh = b * NH + h;
    const int j0 = blockIdx.x * GEN7_TILE;
    const size_t C = (size_t)NH * D;
    const float scale = rsqrtf((float)D);
    unsigned long long slots, wide;
    gen7_slot_sets(p, T, slots, wide);
    const bf16* head = qkv + (size_t)b * T * 3 * C + (size_t)h * D;
    gen7_stage<D>(kc, SD, head + C, 3 * C, j0, GEN7_TILE, T);
    gen7_stage<D>(vc, SD, head + 2 * C, 3 * C, j0, GEN7_TILE, T);
    gen7_stage<D>(qg, SD, head, 3 * C, 0, G, T, p.globals, wide);
    gen7_stage<D>(gg, SD, dout + (size_t)b * T * C + (size_t)h * D, C, 0, G, T, p.globals, wide);
    for (int g = threadIdx.x; g < G; g += blockDim.x) {
        const bool w = (wide >> g) & 1ull;
        lg[g] = w ? lse[(size_t)bh * T + p.globals[g]] : 0.f;
        dg[g] = w ? Dsum[(size_t)bh * T + p.globals[g]] : 0.f;
    }
    __syncthreads();
    const int kr = warp * 32 + lane, j = j0 + kr;   // this lane's key
    for (int g = 0; g < G; g++) {
        const bool use = ((wide >> g) & 1ull) && j < T && !spec_allowed(p0, p.globals[g], j);
        float pr = 0.f, ds = 0.f;
        if (use) {
            const float s = gen7_dot<D>(qg + g * SD, kc + kr * SD) * scale;
            const float dp = gen7_dot<D>(gg + g * SD, vc + kr * SD);
            pr = expf(s - lg[g]);
            ds = pr * (dp - dg[g]) * scale;
        }
        ps[g * GEN7_TILE + kr] = pr;
        dss[g * GEN7_TILE + kr] = ds;
    }
    __syncthreads();
    // every key's dK, dV from the wide rows: a warp its 32 keys, four at a time, lanes over dims
    for (int t0 = warp * 32; t0 < warp * 32 + 32 && j0 + t0 < T; t0 += 4) {
        float ak[4][DPL], av[4][DPL];
        for (int u = 0; u < 4; u++) {
#pragma unroll
            for (int k = 0; k < DPL; k++) ak[u][k] = av[u][k] = 0.f;
        }
        bool any = false;
        for (int g = 0; g < G; g++) {
            for (int u = 0; u < 4; u++) {
                const float wp = ps[g * GEN7_TILE + t0 + u], wd = dss[g * GEN7_TILE + t0 + u];
                if (wp != 0.f) {
                    any = true;
#pragma unroll
                    for (int k = 0; k < DPL; k++) {
                        ak[u][k] += wd * __bfloat162float(qg[g * SD + lane + 32 * k]);
                        av[u][k] += wp * __bfloat162float(gg[g * SD + lane + 32 * k]);
                    }
                }
            }
        }
        if (!any) continue;
        bf16 cur[4][2][DPL];
        for (int u = 0; u < 4; u++) {
            const bf16* row = dqkv + ((size_t)b * T + j0 + t0 + u) * 3 * C + C + (size_t)h * D;
#pragma unroll
            for (int k = 0; k < DPL; k++) {
                const bool in = j0 + t0 + u < T;
                cur[u][0][k] = in ? row[lane + 32 * k] : __float2bfloat16(0.f);
                cur[u][1][k] = in ? row[C + lane + 32 * k] : __float2bfloat16(0.f);
            }
        }
        for (int u = 0; u < 4; u++) {
            if (j0 + t0 + u >= T) break;
            bf16* row = dqkv + ((size_t)b * T + j0 + t0 + u) * 3 * C + C + (size_t)h * D;
#pragma unroll
            for (int k = 0; k < DPL; k++) {
                row[lane + 32 * k] = __float2bfloat16(__bfloat162float(cur[u][0][k]) + ak[u][k]);
                row[C + lane + 32 * k] = __float2bfloat16(__bfloat162float(cur[u][1][k]) + av[u][k]);
            }
        }
    }
    // each wide row's dQ over the tile's keys, in order
    for (int x = threadIdx.x; x < G * D; x += blockDim.x) {
        const int g = x / D, e = x % D;
        float a = 0.f;
        if ((wide >> g) & 1ull)
            for (int t = 0; t < GEN7_TILE; t++) a += dss[g * GEN7_TILE + t] * __bfloat162float(kc[t * SD + e]);
        part_dq[(((size_t)bh * G + g) * gridDim.x + blockIdx.x) * D + e] = a;
    }
}

// the wide rows' dQ: part_dq summed over the key tiles in order, added into dqkv. grid (G, B NH), D threads.
template<int D>
__global__ void gen7_wide_dq_reduce_kernel(bf16* dqkv, const float* part_dq, int T, int NH, int tiles, AttnSpec p) {
    const int g = blockIdx.x, bh = blockIdx.y, b = bh / NH, h = bh % NH, x = threadIdx.x, i = p.globals[g];
    if (!gen7_slot(p, g, T) || !gen7_wide(p, i)) return;
    float a = 0.f;
    for (int c = 0; c < tiles; c++) a += part_dq[(((size_t)bh * p.num_globals + g) * tiles + c) * D + x];
    bf16* el = dqkv + ((size_t)b * T + i) * 3 * NH * D + (size_t)h * D + x;
    *el = __float2bfloat16(__bfloat162float(*el) + a);
}

// the patterns version 7 takes: global positions and no dilation (dilated patterns with globals stay
// on version 6), heads of 64 or 128, on a Hopper GPU with this binary's sm_90a code (where it was
// measured; its kernels ask for up to 195 KB of shared memory, more than other GPUs have)
static bool gen7_can(const AttnSpec& p, int D) {
    return p.num_globals > 0 && p.dilation <= 1 && p.skip_stride <= 1 && (D == 64 || D == 128) && wgmma_available();
}

// and where it pays (H100, the Longformer pattern, W = R = 256 with 16 globals, 12 x 64, forward +
// backward, ns a token at T = 1024 / 2048 / 4096 / 16384): version 7 103 / 108 / 111 / 114, flat in T;
// version 5 74 / 124 / 161 / 219, growing with the global tiles it visits. So version 7 from T = 2048
// on. Causal patterns with globals (part 1 on the band kernels, no wide rows) were not timed: they
// stay on version 5.
static bool gen7_pays(const AttnSpec& p, int T) { return !p.causal && T >= 2048; }

static bool gen7_has_wide(const AttnSpec& p) { return !p.causal && p.num_globals > 0; }

template<int D>
static void gen7_forward_d(bf16* out, float* lse, const bf16* qkv, int B, int T, int NH, const AttnSpec& p) {
    static bool configured = false;
    if (!configured) {   // for the most global slots
        cudaCheck(cudaFuncSetAttribute(gen7_narrow_forward_kernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       (int)gen7_narrow_fwd_smem<D>(ATTN_MAX_GLOBALS)));
        cudaCheck(cudaFuncSetAttribute(gen7_wide_forward_kernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       (int)gen7_wide_fwd_smem<D>(ATTN_MAX_GLOBALS)));
        configured = true;
    }
    const AttnSpec p0 = gen7_band(p);
    const int G = p.num_globals;
    if (p0.causal && wgmma_available()) attention_forward11<D>(out, lse, qkv, B, T, NH, p0.window, p0.sinks);
    else                                 attention_general5_forward(out, lse, qkv, B, T, NH, D, p0);
    gen7_narrow_forward_kernel<D><<<dim3(ceil_div(T, 64), NH, B), 128, gen7_narrow_fwd_smem<D>(G)>>>(out, lse, qkv, T, NH, p, p0);
    cudaCheckLaunch();
    if (gen7_has_wide(p)) {
        const int tiles = ceil_div(T, GEN7_TILE);
        float* part = (float*)gen6_get_scratch((size_t)B * NH * G * tiles * (D + 2) * sizeof(float));
        gen7_wide_forward_kernel<D><<<dim3(tiles, B * NH), 128, gen7_wide_fwd_smem<D>(G)>>>(part, qkv, T, NH, p, p0);
        cudaCheckLaunch();
        gen7_wide_merge_kernel<D><<<dim3(G, B * NH), 32>>>(out, lse, part, T, NH, tiles, p);
        cudaCheckLaunch();
    }
}

template<int D>
static void gen7_backward_d(bf16* dqkv, float* Dsum, const bf16* qkv, const bf16* out, const bf16* dout,
                            const float* lse, int B, int T, int NH, const AttnSpec& p) {
    static bool configured = false;
    if (!configured) {
        cudaCheck(cudaFuncSetAttribute(gen7_narrow_backward_kernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       (int)gen7_narrow_bwd_smem<D>(ATTN_MAX_GLOBALS)));
        cudaCheck(cudaFuncSetAttribute(gen7_wide_backward_kernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       (int)gen7_wide_bwd_smem<D>(ATTN_MAX_GLOBALS)));
        configured = true;
    }
    const AttnSpec p0 = gen7_band(p);
    // part 1 with the merged out and lse; it also leaves D_i = rowsum(dO O) in Dsum for part 2
    if (p0.causal && wgmma_available()) attention_backward13<D>(dqkv, Dsum, qkv, out, dout, lse, B, T, NH, p0.window, p0.sinks);
    else                                 attention_general5_backward(dqkv, Dsum, qkv, out, dout, lse, B, T, NH, D, p0);
    const int G = p.num_globals, tiles = ceil_div(T, GEN7_TILE);
    const size_t dkv_floats = (size_t)B * NH * tiles * G * 2 * D;
    const size_t dq_floats = gen7_has_wide(p) ? (size_t)B * NH * G * tiles * D : 0;
    float* part_dkv = (float*)gen6_get_scratch((dkv_floats + dq_floats) * sizeof(float));
    float* part_dq = part_dkv + dkv_floats;
    gen7_narrow_backward_kernel<D><<<dim3(tiles, NH, B), 128, gen7_narrow_bwd_smem<D>(G)>>>(dqkv, part_dkv, qkv, dout, lse, Dsum,
                                                                                           T, NH, p, p0);
    cudaCheckLaunch();
    gen7_narrow_reduce_kernel<D><<<dim3(G, B * NH), 2 * D>>>(dqkv, part_dkv, T, NH, tiles, p);
    cudaCheckLaunch();
    if (gen7_has_wide(p)) {
        gen7_wide_backward_kernel<D><<<dim3(tiles, NH, B), 128, gen7_wide_bwd_smem<D>(G)>>>(dqkv, part_dq, qkv, dout, lse, Dsum,
                                                                                           T, NH, p, p0);
        cudaCheckLaunch();
        gen7_wide_dq_reduce_kernel<D><<<dim3(G, B * NH), D>>>(dqkv, part_dq, T, NH, tiles, p);
        cudaCheckLaunch();
    }
}

// the split wherever it can run (dev/cuda's main also checks and times it alone, as "v7 split"); every
// other pattern as version 6
static void attention_general7_split_forward(bf16* out, float* lse, const bf16* qkv, int B, int T, int NH, int D, const AttnSpec& p) {
    if (!gen7_can(p, D)) { attention_general6_forward(out, lse, qkv, B, T, NH, D, p); return; }
    if (D == 64) gen7_forward_d<64>(out, lse, qkv, B, T, NH, p);
    else         gen7_forward_d<128>(out, lse, qkv, B, T, NH, p);
}
static void attention_general7_split_backward(bf16* dqkv, float* Dsum, const bf16* qkv, const bf16* out, const bf16* dout,
                                              const float* lse, int B, int T, int NH, int D, const AttnSpec& p) {
    if (!gen7_can(p, D)) { attention_general6_backward(dqkv, Dsum, qkv, out, dout, lse, B, T, NH, D, p); return; }
    if (D == 64) gen7_backward_d<64>(dqkv, Dsum, qkv, out, dout, lse, B, T, NH, p);
    else         gen7_backward_d<128>(dqkv, Dsum, qkv, out, dout, lse, B, T, NH, p);
}

// the programs' dispatch: the split where it pays, else version 6
static void attention_general7_forward(bf16* out, float* lse, const bf16* qkv, int B, int T, int NH, int D, const AttnSpec& p) {
    if (gen7_pays(p, T)) attention_general7_split_forward(out, lse, qkv, B, T, NH, D, p);
    else                 attention_general6_forward(out, lse, qkv, B, T, NH, D, p);
}
static void attention_general7_backward(bf16* dqkv, float* Dsum, const bf16* qkv, const bf16* out, const bf16* dout,
                                        const float* lse, int B, int T, int NH, int D, const AttnSpec& p) {
    if (gen7_pays(p, T)) attention_general7_split_backward(dqkv, Dsum, qkv, out, dout, lse, B, T, NH, D, p);
    else                 attention_general6_backward(dqkv, Dsum, qkv, out, dout, lse, B, T, NH, D, p);
}
// @copy-end attn-general-v7

// version 6's split wherever it can run, checked and timed beside the programs' dispatch (above),
// which takes it only where it pays
static void attention_general6_split_forward(bf16* out, float* lse, const bf16* qkv, int B, int T, int NH, int D, const AttnSpec& p) {
    if (gen6_can(p, B, T, D)) gen6_forward(out, lse, qkv, B, T, NH, D, p);
    else                attention_general5_forward(out, lse, qkv, B, T, NH, D, p);
}
static void attention_general6_split_backward(bf16* dqkv, float* Dsum, const bf16* qkv, const bf16* out, const bf16* dout,
                                              const float* lse, int B, int T, int NH, int D, const AttnSpec& p) {
    if (gen6_can(p, B, T, D)) gen6_backward(dqkv, Dsum, qkv, out, dout, lse, B, T, NH, D, p);
    else                attention_general5_backward(dqkv, Dsum, qkv, out, dout, lse, B, T, NH, D, p);
}

// ----------------------------------------------------------------------------

struct GenCase { int B, T, NH, D; AttnSpec p; const char* why; };

static AttnSpec spec(int causal, int W, int S, int R, int d, int K, std::vector<int> globals) {
    AttnSpec p;
    memset(&p, 0, sizeof(p));
    p.causal = causal; p.window = W; p.sinks = S; p.lookahead = R; p.dilation = d; p.dilated_keys = K;
    p.num_globals = (int)globals.size();
    for (size_t g = 0; g < globals.size(); g++) p.globals[g] = globals[g];
    return p;
}

// the versions main checks and times, in the story's order
struct GenVersion {
    const char* name;
    void (*forward)(bf16*, float*, const bf16*, int, int, int, int, const AttnSpec&);
    void (*backward)(bf16*, float*, const bf16*, const bf16*, const bf16*, const float*, int, int, int, int, const AttnSpec&);
    bool v1_bits;  // walks v1's keys in v1's order: must give v1's bits
};
static const GenVersion GEN_VERSIONS[] = {
    {"v1", attention_general_warp_forward<false>, attention_general_warp_backward<false>, true},
    {"v2", attention_general_warp_forward<true>, attention_general_warp_backward<true>, true},
    {"v3", attention_general3_forward, attention_general3_backward, false},  // tensor cores, allowed tiles
    {"v4", attention_general4_forward, attention_general4_backward, false},  // wgmma + TMA
    {"v5", attention_general5_forward, attention_general5_backward, false},  // v4, masks as 64-bit row sets
    {"v6 split", attention_general6_split_forward, attention_general6_split_backward, false},  // dilation: residue bands + the rest
    {"v6", attention_general6_forward, attention_general6_backward, false},  // the programs' dispatch: the split where it pays, else v5
    {"v7 split", attention_general7_split_forward, attention_general7_split_backward, false},  // globals split off the band (no dilation)
    {"v7", attention_general7_forward, attention_general7_backward, false},  // the programs' dispatch: v7's split where it pays, else v6
};
static const int NUM_GEN_VERSIONS = sizeof(GEN_VERSIONS) / sizeof(GEN_VERSIONS[0]);

// @copy-begin attn-general-pairs
// ----------------------------------------------------------------------------
// allowed (i, j) pairs of one (batch, head): the walk, with each row's band (and lookahead) counted
// in one step, since every key in it is allowed (key by key took seconds per T on wide non-causal
// patterns); test/test_attention_walk.cu checks it against spec_allowed
static long long spec_pair_count(const AttnSpec& p, int T) {
    long long n = 0;
    for (int i = 0; i < T; i++) {
        if (!p.causal && (i < p.sinks || spec_is_global(p, i))) { n += T; continue; }   // sees every key
        const int lo = p.window == 0 ? 0 : std::max(0, i - p.window + 1);
        const int hi = p.causal ? i : (int)std::min<long long>(T - 1, (long long)i + p.lookahead);
        for (int j = spec_next_key(p, i, -1, T); j < T;) {
            if (j >= lo && j <= hi) { n += hi - j + 1; j = spec_next_key(p, i, hi, T); }
            else { n++; j = spec_next_key(p, i, j, T); }
        }
    }
    return n;
}
// @copy-end attn-general-pairs

#ifndef ATTENTION_GENERAL_NO_MAIN  // test/test_attention_walk.cu includes this file for its walk
// @copy-begin attn-general-cpu
// ----------------------------------------------------------------------------
// CPU reference in float64 for any pattern: forward, then the backward from its probabilities

static void general_cpu(float* out, float* lse, float* dqkv, const float* qkv, const float* dout,
                        int B, int T, int NH, int D, const AttnSpec& p) {
    size_t C = (size_t)NH * D, row3 = 3 * C;
    double scale = 1.0 / sqrt((double)D);
    std::vector<double> s(T), pr(T), dp(T);
    for (size_t x = 0; x < (size_t)B * T * row3; x++) dqkv[x] = 0.0f;
    std::vector<double> dq(D), dacc((size_t)B * T * row3, 0.0);
    for (int b = 0; b < B; b++) for (int h = 0; h < NH; h++) for (int i = 0; i < T; i++) {
        const float* q = qkv + ((size_t)b * T + i) * row3 + (size_t)h * D;
        double m = -INFINITY;
        for (int j = 0; j < T; j++) {
            if (!spec_allowed(p, i, j)) { s[j] = -INFINITY; continue; }
            const float* k = qkv + ((size_t)b * T + j) * row3 + C + (size_t)h * D;
            double dot = 0.0;
            for (int d = 0; d < D; d++) dot += (double)q[d] * k[d];
            s[j] = dot * scale;
            m = std::max(m, s[j]);
        }
        double l = 0.0;
        for (int j = 0; j < T; j++) { pr[j] = s[j] == -INFINITY ? 0.0 : exp(s[j] - m); l += pr[j]; }
        lse[((size_t)b * NH + h) * T + i] = (float)(m + log(l));
        float* o = out + ((size_t)b * T + i) * C + (size_t)h * D;
        const float* g = dout + ((size_t)b * T + i) * C + (size_t)h * D;
        double dsum = 0.0;
        for (int d = 0; d < D; d++) {
            double acc = 0.0;
            for (int j = 0; j < T; j++) if (pr[j] > 0.0) acc += pr[j] / l * qkv[((size_t)b * T + j) * row3 + 2 * C + (size_t)h * D + d];
            o[d] = (float)acc;
            dsum += acc * g[d];
        }
        for (int d = 0; d < D; d++) dq[d] = 0.0;
        for (int j = 0; j < T; j++) {
            if (pr[j] == 0.0) continue;
            double pj = pr[j] / l;
            const float* k = qkv + ((size_t)b * T + j) * row3 + C + (size_t)h * D;
            const float* v = k + C;
            double dpj = 0.0;
            for (int d = 0; d < D; d++) dpj += (double)g[d] * v[d];
            double ds = pj * (dpj - dsum) * scale;
            for (int d = 0; d < D; d++) {
                dq[d] += ds * k[d];
                dacc[((size_t)b * T + j) * row3 + C + (size_t)h * D + d] += ds * q[d];
                dacc[((size_t)b * T + j) * row3 + 2 * C + (size_t)h * D + d] += pj * g[d];
            }
        }
        for (int d = 0; d < D; d++) dacc[((size_t)b * T + i) * row3 + (size_t)h * D + d] += dq[d];
    }
    for (size_t x = 0; x < (size_t)B * T * row3; x++) dqkv[x] = (float)dacc[x];
}
// @copy-end attn-general-cpu

int main(int argc, char** argv) {
    bool check_only = argc > 1 && strcmp(argv[1], "--check-only") == 0;
    print_device();
    const GenCase cases[] = {
        {2, 96, 2, 64, spec(1, 24, 3, 0, 1, 0, {}), "causal band + sinks (as the band kernels)"},
        {2, 120, 2, 64, spec(1, 16, 0, 0, 4, 0, {}), "dilation 4, unlimited (seeds/001)"},
        {1, 100, 3, 64, spec(1, 12, 2, 0, 3, 5, {}), "dilation 3 x 5 keys + sinks"},
        {2, 80, 2, 64, spec(0, 8, 0, 3, 1, 0, {0, 40}), "non-causal, lookahead 3, globals {0, 40} (seeds/002)"},
        {1, 70, 2, 128, spec(0, 6, 2, 0, 1, 0, {}), "non-causal sinks: the first 2 queries see all, D=128"},
        {2, 64, 4, 16, spec(1, 8, 2, 0, 2, 0, {33}), "D=16 (the CPU test models), global in causal mode"},
        {1, 200, 2, 32, spec(1, 0, 0, 0, 1, 0, {}), "full causal, D=32"},
        {1, 50, 2, 64, spec(1, 100, 0, 0, 1, 0, {}), "W >= T"},
        {1, 77, 2, 64, spec(0, 5, 1, 4, 3, 4, {7, 70}), "non-causal: lookahead, dilation, sinks, globals at once"},
        // long enough for v3's paths: several key tiles a block (buffers reused), skipped tiles,
        // blocks inside the band (no mask), tiles with global keys and global rows
        {1, 520, 2, 64, spec(1, 0, 0, 0, 1, 0, {}), "full causal, T=520 (v3: up to 9 tiles a block)"},
        {2, 600, 2, 64, spec(1, 128, 4, 0, 4, 8, {}), "W=128 S=4 + 8 dilated keys at 4 (v3: tiles skipped)"},
        {1, 500, 2, 64, spec(1, 200, 0, 0, 1, 0, {}), "W=200 (v3: unmasked band blocks)"},
        {1, 450, 2, 64, spec(0, 64, 0, 64, 1, 0, {0, 300}), "Longformer: non-causal W=R=64, globals {0, 300}"},
        {1, 400, 2, 128, spec(1, 96, 2, 0, 4, 0, {130}), "D=128: W=96 + dilation 4 (all), a global key"},
        // version 7's split: the band kernels with narrow rows (causal); version 5 with narrow and wide
        // rows, chunks of 128 keys, two slots a lane (non-causal, 40 globals)
        {2, 300, 2, 64, spec(1, 32, 4, 0, 1, 0, {5, 100, 250}), "causal W=32 S=4 + 3 global keys (v7: band kernels + globals)"},
        {1, 333, 2, 128, spec(0, 16, 2, 8, 1, 0, {3, 11, 19, 27, 35, 43, 51, 59, 67, 75, 83, 91, 99, 107, 115, 123, 131, 139, 147, 155, 163, 171, 179, 187, 195, 203, 211, 219, 227, 235, 243, 251, 259, 267, 275, 283, 291, 299, 307, 315}), "non-causal W=16 R=8 S=2, 40 globals, D=128"},
        // (added after this session's GPU time: not yet run) a repeated global position, counted once;
        // heads of 64 with more than 32 globals (two slots a lane)
        {1, 260, 2, 64, spec(0, 12, 0, 4, 1, 0, {5, 200, 5, 7}), "non-causal, a global position given twice"},
        {1, 290, 2, 64, spec(0, 10, 1, 0, 1, 0, {4, 12, 20, 28, 36, 44, 52, 60, 68, 76, 84, 92, 100, 108, 116, 124, 132, 140, 148, 156, 164, 172, 180, 188, 196, 204, 212, 220, 228, 236, 244, 252, 260, 268, 276, 284}), "non-causal W=10 S=1, 36 globals, D=64"},
    };
    int failures = 0;
    printf("%-58s | ver | %-9s %-9s %-9s | result\n", "case", "out", "lse", "dqkv");
    for (const GenCase& cs : cases) {
        int B = cs.B, T = cs.T, NH = cs.NH, D = cs.D;
        size_t nqkv = (size_t)B * T * 3 * NH * D, nout = (size_t)B * T * NH * D, nlse = (size_t)B * NH * T;
        std::vector<float> qkv(nqkv), dout(nout), out_ref(nout), lse_ref(nlse), dqkv_ref(nqkv);
        fill_random_qkv(qkv.data(), B, T, NH, D);
        fill_random_bf16(dout.data(), nout, 1.0f);
        for (auto& x : qkv) x = round_bf16(x);
        general_cpu(out_ref.data(), lse_ref.data(), dqkv_ref.data(), qkv.data(), dout.data(), B, T, NH, D, cs.p);
        bf16 *d_qkv, *d_out, *d_dout, *d_dqkv;
        float *d_lse, *d_dsum;
        cudaCheck(cudaMalloc(&d_qkv, nqkv * sizeof(bf16)));
        cudaCheck(cudaMalloc(&d_dqkv, nqkv * sizeof(bf16)));
        cudaCheck(cudaMalloc(&d_out, nout * sizeof(bf16)));
        cudaCheck(cudaMalloc(&d_dout, nout * sizeof(bf16)));
        cudaCheck(cudaMalloc(&d_lse, nlse * sizeof(float)));
        cudaCheck(cudaMalloc(&d_dsum, nlse * sizeof(float)));
        upload_bf16(d_qkv, qkv.data(), nqkv);
        upload_bf16(d_dout, dout.data(), nout);
        std::vector<bf16> first_out(nout), first_dqkv(nqkv), bits_out(nout), bits_dqkv(nqkv);
        for (int v = 0; v < NUM_GEN_VERSIONS; v++) {
            poison(d_out, nout * sizeof(bf16));
            poison(d_lse, nlse * sizeof(float));
            poison(d_dqkv, nqkv * sizeof(bf16));
            GEN_VERSIONS[v].forward(d_out, d_lse, d_qkv, B, T, NH, D, cs.p);
            GEN_VERSIONS[v].backward(d_dqkv, d_dsum, d_qkv, d_out, d_dout, d_lse, B, T, NH, D, cs.p);
            cudaCheck(cudaDeviceSynchronize());
            std::vector<float> out(nout), lse(nlse), dqkv(nqkv);
            download_bf16(out.data(), d_out, nout);
            download_bf16(dqkv.data(), d_dqkv, nqkv);
            cudaCheck(cudaMemcpy(lse.data(), d_lse, nlse * sizeof(float), cudaMemcpyDeviceToHost));
            CheckResult ro = rel_error(out.data(), out_ref.data(), nout, TOL_BF16);
            CheckResult rl = rel_error(lse.data(), lse_ref.data(), nlse, TOL_FP32);
            CheckResult rd = rel_error(dqkv.data(), dqkv_ref.data(), nqkv, TOL_BF16);
            // every later version walks the same keys in the same order as v1: the same bits
            cudaCheck(cudaMemcpy(bits_out.data(), d_out, nout * sizeof(bf16), cudaMemcpyDeviceToHost));
            cudaCheck(cudaMemcpy(bits_dqkv.data(), d_dqkv, nqkv * sizeof(bf16), cudaMemcpyDeviceToHost));
            if (v == 0) { first_out = bits_out; first_dqkv = bits_dqkv; }
            bool same = !GEN_VERSIONS[v].v1_bits || (memcmp(bits_out.data(), first_out.data(), nout * sizeof(bf16)) == 0 &&
                                                 memcmp(bits_dqkv.data(), first_dqkv.data(), nqkv * sizeof(bf16)) == 0);
            bool ok = ro.pass && rl.pass && rd.pass && same;
            failures += !ok;
            printf("%-58s | %-3s | %.2e  %.2e  %.2e  | %s\n", v == 0 ? cs.why : "", GEN_VERSIONS[v].name, ro.rel, rl.rel, rd.rel,
                   ok ? (v == 0 || !GEN_VERSIONS[v].v1_bits ? "ok" : "ok, v1's bits") : (same ? "FAIL" : "FAIL (not v1's bits)"));
        }
        cudaCheck(cudaFree(d_qkv)); cudaCheck(cudaFree(d_dqkv)); cudaCheck(cudaFree(d_out));
        cudaCheck(cudaFree(d_dout)); cudaCheck(cudaFree(d_lse)); cudaCheck(cudaFree(d_dsum));
    }
    if (!check_only) {
        // time per token against T at a fixed B*T = 32768, heads of 64 and 128: v1 walks every key
        // (O(T^2)), v2 the allowed ones (flat where the pattern's row length is), v3 the allowed
        // tiles on tensor cores
        struct { const char* name; AttnSpec p; } timed[] = {
            {"W=256 S=4, dilation 4 x 64 keys", spec(1, 256, 4, 0, 4, 64, {})},
            {"W=96, dilation 4 to the start (seeds/001)", spec(1, 96, 0, 0, 4, 0, {})},
            {"non-causal W=R=256, 16 globals (Longformer)", spec(0, 256, 0, 256, 1, 0, {0, 512, 1024, 1536, 2048, 2560, 3072,
                3584, 4096, 4608, 5120, 5632, 6144, 6656, 7168, 7680})},
        };
        const int shapes[2][2] = {{12, 64}, {6, 128}};
        for (const auto& shape : shapes) {
        const int NH = shape[0], D = shape[1];
        printf("\ntiming: B*T = 32768, %d heads of %d, ns per token, forward / forward+backward (median of 5);\n"
               "TFLOP/s of the last version on allowed pairs (forward 4 P D per head, forward+backward 14 P D)\n", NH, D);
        printf("%-46s | %6s |", "pattern", "T");
        for (int v = 0; v < NUM_GEN_VERSIONS; v++) printf(" %15s |", GEN_VERSIONS[v].name);
        printf(" %s TFLOP/s fwd / fwd+bwd\n", GEN_VERSIONS[NUM_GEN_VERSIONS - 1].name);
        for (auto& tp : timed) {
            for (int T = 1024; T <= 16384; T *= 2) {
                int B = 32768 / T;
                AttnSpec p = tp.p;
                int kept = 0;  // globals beyond T are dropped (a pattern's positions must be below T)
                for (int g = 0; g < p.num_globals; g++) if (p.globals[g] < T) p.globals[kept++] = p.globals[g];
                p.num_globals = kept;
                size_t nqkv = (size_t)B * T * 3 * NH * D, nout = (size_t)B * T * NH * D, nlse = (size_t)B * NH * T;
                std::vector<float> h(nqkv);
                fill_random_qkv(h.data(), B, T, NH, D);
                bf16 *d_qkv, *d_out, *d_dqkv;
                float *d_lse, *d_dsum;
                cudaCheck(cudaMalloc(&d_qkv, nqkv * sizeof(bf16)));
                cudaCheck(cudaMalloc(&d_dqkv, nqkv * sizeof(bf16)));
                cudaCheck(cudaMalloc(&d_out, nout * sizeof(bf16)));
                cudaCheck(cudaMalloc(&d_lse, nlse * sizeof(float)));
                cudaCheck(cudaMalloc(&d_dsum, nlse * sizeof(float)));
                upload_bf16(d_qkv, h.data(), nqkv);
                printf("%-46s | %6d |", T == 1024 ? tp.name : "", T);
                float last_fwd_ms = 0.0f, last_both_ms = 0.0f;   // the last version's
                for (int v = 0; v < NUM_GEN_VERSIONS; v++) {
                    if (v == 0 && T > 4096) { printf(" %15s |", "(skipped)"); continue; }  // v1 at long T: minutes
                    float fwd = time_median_ms([&](int) { GEN_VERSIONS[v].forward(d_out, d_lse, d_qkv, B, T, NH, D, p); }, 1, 1, 5);
                    float both = time_median_ms([&](int) {
                        GEN_VERSIONS[v].forward(d_out, d_lse, d_qkv, B, T, NH, D, p);
                        GEN_VERSIONS[v].backward(d_dqkv, d_dsum, d_qkv, d_out, d_out, d_lse, B, T, NH, D, p);
                    }, 1, 1, 5);
                    if (v == NUM_GEN_VERSIONS - 1) { last_fwd_ms = fwd; last_both_ms = both; }
                    char cell[40];
                    snprintf(cell, sizeof(cell), "%.1f / %.1f", fwd * 1e6f / 32768.0f, both * 1e6f / 32768.0f);
                    printf(" %15s |", cell);
                }
                const double pairs = (double)spec_pair_count(p, T);  // allowed pairs of one head
                const double per_pd = pairs * D * B * NH / 1e12;
                printf(" %.0f / %.0f\n", 4.0 * per_pd / (last_fwd_ms * 1e-3), 14.0 * per_pd / (last_both_ms * 1e-3));
                cudaCheck(cudaFree(d_qkv)); cudaCheck(cudaFree(d_dqkv)); cudaCheck(cudaFree(d_out));
                cudaCheck(cudaFree(d_lse)); cudaCheck(cudaFree(d_dsum));
            }
        }
        }
    }
    printf(failures ? "%d checks failed\n" : "all checks passed\n", failures);
    return failures ? 1 : 0;
}
#endif

#ifdef ATTENTION_GENERAL_LIBRARY
// ----------------------------------------------------------------------------
// the library (make build/libattention_general.so; scripts/attention_general_vs_flex.py calls it
// with ctypes on PyTorch's tensors): any version's forward and backward on the caller's device
// pointers, the pattern field by field, on the default stream. Layouts as above; Dsum is (B, NH, T)
// float32 scratch. Returns 0, or 1 with the reason on stderr for arguments it cannot take. A CUDA
// error ends the process with one line (cudaCheck), as in every dev/cuda program.

static int lib_spec(AttnSpec* p, int version, int B, int T, int NH, int D, int causal, int W, int S, int R, int d,
                    int K, int num_globals, const int* globals) {
    const char* why = nullptr;
    if (version < 1 || version > NUM_GEN_VERSIONS) why = "version out of range";
    else if (B < 1 || T < 1 || NH < 1 || D < 8 || D > 32 * GEN_DPL || D % 8) why = "shape: B, T, NH >= 1, D a multiple of 8 up to 128";
    else if ((size_t)B * T * 3 * NH * D >= (size_t)1 << 31) why = "more than 2^31 elements in qkv";
    else if ((causal != 0 && causal != 1) || W < 0 || S < 0 || R < 0 || d < 1 || K < 0 || (causal && R > 0) ||
             (d > 1 && W == 0) || (K > 0 && d == 1)) why = "pattern: SPEC §1's fields and their rules";
    else if (num_globals < 0 || num_globals > ATTN_MAX_GLOBALS || (num_globals > 0 && !globals)) why = "global positions: at most 64";
    else if ((size_t)B * NH * T >= (size_t)1 << 31) why = "more than 2^31 rows";
    if (why) { fprintf(stderr, "error: attention_general library: %s\n", why); return 1; }
    for (int g = 0; g < num_globals; g++) {
        if (globals[g] < 0 || globals[g] >= T) {
            fprintf(stderr, "error: attention_general library: global position %d outside 0..%d\n", globals[g], T - 1);
            return 1;
        }
    }
    *p = spec(causal, W, S, R, d, K, std::vector<int>(globals, globals + num_globals));
    return 0;
}

extern "C" int gen_num_versions(void) { return NUM_GEN_VERSIONS; }
extern "C" const char* gen_version_name(int version) {
    return version >= 1 && version <= NUM_GEN_VERSIONS ? GEN_VERSIONS[version - 1].name : "";
}
extern "C" int gen_forward(int version, const void* qkv, void* out, float* lse, int B, int T, int NH, int D,
                           int causal, int W, int S, int R, int d, int K, int num_globals, const int* globals) {
    AttnSpec p;
    if (lib_spec(&p, version, B, T, NH, D, causal, W, S, R, d, K, num_globals, globals)) return 1;
    GEN_VERSIONS[version - 1].forward((bf16*)out, lse, (const bf16*)qkv, B, T, NH, D, p);
    return 0;
}
extern "C" int gen_backward(int version, const void* qkv, const void* out, const void* dout, const float* lse,
                            void* dqkv, float* Dsum, int B, int T, int NH, int D,
                            int causal, int W, int S, int R, int d, int K, int num_globals, const int* globals) {
    AttnSpec p;
    if (lib_spec(&p, version, B, T, NH, D, causal, W, S, R, d, K, num_globals, globals)) return 1;
    GEN_VERSIONS[version - 1].backward((bf16*)dqkv, Dsum, (const bf16*)qkv, (const bf16*)out, (const bf16*)dout, lse,
                                       B, T, NH, D, p);
    return 0;
}
// the pattern's allowed pairs of one (batch, head) by the kernels' walk, or -1 for arguments it
// cannot take (the script checks its own count, the trainers' rule, against it)
extern "C" long long gen_pair_count(int T, int causal, int W, int S, int R, int d, int K, int num_globals,
                                    const int* globals) {
    AttnSpec p;
    if (lib_spec(&p, 1, 1, T, 1, 64, causal, W, S, R, d, K, num_globals, globals)) return -1;
    return spec_pair_count(p, T);
}
#endif
