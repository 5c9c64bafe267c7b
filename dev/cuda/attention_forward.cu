/*
Kernels for the attention forward pass with the streaming pattern: causal, sliding window W
(W = 0: full causal; the band 0 <= i - j < W includes the query) plus attention sinks S (keys j < S
are always attended). Dense causal attention is the W = 0, S = 0 special case.

  in:  qkv (B, T, 3, NH, D) bf16   == llm.c's (B, T, 3C)
  out: out (B, T, NH, D)    bf16   == llm.c's (B, T, C), ready for the attention projection
       lse (B, NH, T)       fp32   log-sum-exp (natural log) of the scaled scores, for the backward
  scale 1/sqrt(D), D = 64 or 128 (template parameter)

Compile:
nvcc -O3 -arch=sm_90a -lineinfo -Xptxas -v attention_forward.cu -o attention_forward
(sm_90a for versions 8-12's wgmma and TMA; with -arch=sm_90 or older targets they skip themselves)

version 1 is naive: one thread per (b, h, query) row, fp32, loops over the allowed keys only
./attention_forward 1

version 2 is flash-style on CUDA cores: block per 64-query tile, K/V tiles in smem, online softmax,
visits only the key tiles that intersect the band or the sink prefix, masks only edge tiles
./attention_forward 2

version 3 moves both matmuls onto tensor cores (mma.sync m16n8k16 bf16, ldmatrix), 4 warps x 16 rows,
P stays in registers and is fed to the P.V mma as bf16
./attention_forward 3

version 4 adds cp.async double buffering of the K/V tiles: tile it+1 streams in while tile it computes
./attention_forward 4

version 5 gives each warp two m16 tiles (128-query blocks at D = 64), skips 16-key chunks per warp,
uses ex2.approx.ftz and a lazy rescale (measured: slower than v4, 2 blocks per SM)
./attention_forward 5

version 6 is v4's shape with the next tile's Q K^T issued before this tile's softmax (software
pipelining inside the warp; measured: faster than v4 at W = 256 only)
./attention_forward 6

version 7 is v4's loop with fewer instructions per mma: fixed-slot cp.async, ex2.approx.ftz, lazy
rescale, chunk skipping only on partial tiles (measured: the fastest, 1.2-1.4x v4)
./attention_forward 7

version 8 moves v7 onto Hopper's warpgroup MMA (wgmma, sm_90a): 2 warpgroups x 64 rows per block,
Q K^T and P V as wgmma with Q, K, V read from 128-byte-swizzled smem through descriptors
(measured on an H200: 1.23-1.40x v7, 352 TFLOP/s at T = 16384 full causal; needs the sm_90a build)
./attention_forward 8

version 9 is v8 with one warpgroup (64 rows) per block instead of two: no barrier ties two
warpgroups' products and softmaxes together, and 5 blocks fit an SM (20 warps, not 16)
(measured: 1.12-1.14x v8 at W = 256, 1.04-1.09x at W = 1024, 1.01-1.03x full causal up to T = 4096,
0.95x at T = 16384)
./attention_forward 9

version 10 is v9 with Q, K and V brought in by the tensor memory accelerator (TMA: one thread, one
copy per 64 x 64 box, completion on an mbarrier) and a head's query tiles side by side in the grid
(measured: 1.17-1.27x v9)
./attention_forward 10

version 11 is v10 with a 16-key sink tile (wgmma n16) when the sinks fit one (measured: 1.04-1.10x
v10 at W = 256; the fastest, 1.21-1.32x v9)
./attention_forward 11

version 12 is v11 with tile it's P V left running under tile it+1's softmax (measured: 0.90-0.95x
v11: it needs 106 registers, so 4 blocks per SM instead of 5)
./attention_forward 12

./attention_forward 4 7     runs the checks and the timing of versions 4 and 7 only

./attention_forward        runs the checks and the timing for all versions
The program exits non-zero if any check fails.
*/

#include "common.h"

// @copy-begin attn-forward-consts
static const float LOG2E = 1.4426950408889634f;
static const float LN2   = 0.6931471805599453f;
// @copy-end attn-forward-consts

// ----------------------------------------------------------------------------
// kernel 1: naive. One thread per (b, h, i) query row, fp32 math, two passes over the allowed keys
// (pass 1: max; pass 2: exp-sum and weighted sum of V). Obviously right, slow: every thread walks
// its own K/V rows through the cache. Expected: a few TFLOP/s at best.

template<int D>
__global__ void attention_forward_kernel1(bf16* out, float* lse, const bf16* qkv,
                                          int B, int T, int NH, int W, int S) {
    int idx = blockIdx.x * blockDim.x + threadIdx.x;   // over (b, h, i), i fastest
    if (idx >= B * NH * T) return;
    const int i = idx % T, h = (idx / T) % NH, b = idx / (T * NH);
    const size_t C = (size_t)NH * D, C3 = 3 * C;
    const bf16* base = qkv + (size_t)b * T * C3 + h * D;   // token t: q at base + t*C3, k at +C, v at +2C
    const bf16* q = base + (size_t)i * C3;
    const float scale = 1.0f / sqrtf((float)D);

    // the allowed keys of row i, as two segments: sinks below the band, then the band itself
    const int jlo = (W > 0) ? max(0, i - W + 1) : 0;
    const int seg_lo[2] = {0, jlo};
    const int seg_hi[2] = {min(S, jlo), i + 1};

    // pass 1: the max score
    float mx = -INFINITY;
    for (int sg = 0; sg < 2; sg++) {
        for (int j = seg_lo[sg]; j < seg_hi[sg]; j++) {
            const bf16* k = base + (size_t)j * C3 + C;
            float dot = 0.f;
            for (int d = 0; d < D; d++) dot += __bfloat162float(q[d]) * __bfloat162float(k[d]);
            mx = fmaxf(mx, dot * scale);
        }
    }
    // pass 2: sum of exp and the weighted sum of values
    float sum = 0.f;
    float acc[D];
    for (int d = 0; d < D; d++) acc[d] = 0.f;
    for (int sg = 0; sg < 2; sg++) {
        for (int j = seg_lo[sg]; j < seg_hi[sg]; j++) {
            const bf16* k = base + (size_t)j * C3 + C;
            const bf16* v = base + (size_t)j * C3 + 2 * C;
            float dot = 0.f;
            for (int d = 0; d < D; d++) dot += __bfloat162float(q[d]) * __bfloat162float(k[d]);
            float p = expf(dot * scale - mx);
            sum += p;
            for (int d = 0; d < D; d++) acc[d] += p * __bfloat162float(v[d]);
        }
    }
    bf16* o = out + ((size_t)(b * T + i) * NH + h) * D;
    for (int d = 0; d < D; d++) o[d] = __float2bfloat16(acc[d] / sum);
    lse[(size_t)(b * NH + h) * T + i] = mx + logf(sum);
}

// ----------------------------------------------------------------------------
// kernel 2: flash-style on CUDA cores. Block per (b, h, 64-query tile); 64 rows x TPR = D/16
// threads per row, each thread owns 16 of the D dims (two 8-wide chunks, c and c + TPR, so the TPR
// lanes of a row read one contiguous 16*TPR-byte span of a K/V row: broadcast across rows, no bank
// conflicts). K/V tiles of 64 keys go through smem; online softmax in fp32 with exp2 (log2(e) folded
// into q). Visits only key tiles that intersect the band or the sink prefix; masks only edge tiles.
// Expected gain over v1: coalesced loads, K/V reuse across 64 queries, and no work on tiles outside
// the pattern; still CUDA-core fp32 (tens of TFLOP/s at most).

template<int D>
__global__ void __launch_bounds__(64 * (D / 16))
attention_forward_kernel2(bf16* out, float* lse, const bf16* qkv, int B, int T, int NH, int W, int S) {
    constexpr int BQ = 64, BK = 64;
    constexpr int TPR = D / 16;        // threads per query row (4 or 8)
    constexpr int CH = D / 8;          // 16-byte chunks per row
    constexpr int NT = BQ * TPR;       // threads per block
    __shared__ __align__(16) bf16 Ks[BK * D];   // (BK, D)
    __shared__ __align__(16) bf16 Vs[BK * D];   // (BK, D)

    const int bh = blockIdx.x, b = bh / NH, h = bh % NH;
    const int qt = gridDim.y - 1 - blockIdx.y;     // the longest (last) query tiles are launched first
    const int tid = threadIdx.x, r = tid / TPR, c = tid % TPR;
    const int lane = tid % 32;
    const int q0 = qt * BQ, i = q0 + r;
    const size_t C = (size_t)NH * D, C3 = 3 * C;
    const bf16* qbase = qkv + (size_t)b * T * C3 + h * D;   // (T, 3, NH, D) slice of head h
    const bf16* kbase = qbase + C;
    const bf16* vbase = qbase + 2 * C;
    const float sl2 = LOG2E / sqrtf((float)D);               // scale * log2(e): scores in log2 units

    // my 16 dims of q (pre-scaled) and of the output accumulator
    float q[16], o[16];
    if (i < T) {
        unpack_bf16x8(*reinterpret_cast<const uint4*>(qbase + (size_t)i * C3 + 8 * c), q);
        unpack_bf16x8(*reinterpret_cast<const uint4*>(qbase + (size_t)i * C3 + 8 * (c + TPR)), q + 8);
    } else {
        for (int d = 0; d < 16; d++) q[d] = 0.f;   // padding rows: harmless zeros, never written
    }
#pragma unroll
    for (int d = 0; d < 16; d++) { q[d] *= sl2; o[d] = 0.f; }
    float m = -INFINITY;   // running max (log2 units), identical in the TPR lanes of a row
    float l = 0.f;         // running sum of exp, partial: only over the keys this lane stores

    const int q_last = min(q0 + BQ, T) - 1;
    const KeyTileRange kr = key_tiles_for_queries(q0, q_last, W, S, BK);
    const int ntiles = key_tile_count(kr);
    for (int it = 0; it < ntiles; it++) {
        const int k0 = key_tile_at(kr, it) * BK;
        __syncthreads();   // everyone is done reading the previous tile
        for (int x = tid; x < BK * CH; x += NT) {
            int kk = x / CH, cc = x % CH, j = k0 + kk;
            uint4 kv = make_uint4(0, 0, 0, 0), vv = make_uint4(0, 0, 0, 0);
            if (j < T) {
                kv = *reinterpret_cast<const uint4*>(kbase + (size_t)j * C3 + cc * 8);
                vv = *reinterpret_cast<const uint4*>(vbase + (size_t)j * C3 + cc * 8);
            }
            *reinterpret_cast<uint4*>(Ks + kk * D + cc * 8) = kv;
            *reinterpret_cast<uint4*>(Vs + kk * D + cc * 8) = vv;
        }
        __syncthreads();
        const bool full = block_fully_allowed(q0, BQ, k0, BK, W, S, T);   // block-uniform

        // scores: every lane of the row gets every score (butterfly), lane c keeps keys jj % TPR == c
        float s[BK / TPR];
        float mt = -INFINITY;
#pragma unroll
        for (int x = 0; x < BK / TPR; x++) s[x] = -INFINITY;
#pragma unroll
        for (int jj = 0; jj < BK; jj++) {
            float kf[16];
            unpack_bf16x8(*reinterpret_cast<const uint4*>(Ks + jj * D + 8 * c), kf);
            unpack_bf16x8(*reinterpret_cast<const uint4*>(Ks + jj * D + 8 * (c + TPR)), kf + 8);
            float part = 0.f;
#pragma unroll
            for (int d = 0; d < 16; d++) part = fmaf(q[d], kf[d], part);
#pragma unroll
            for (int off = TPR / 2; off > 0; off /= 2) part += __shfl_xor_sync(0xffffffffu, part, off);
            if (!full && !attn_valid(i, k0 + jj, W, S, T)) part = -INFINITY;
            if (jj % TPR == c) s[jj / TPR] = part;
            mt = fmaxf(mt, part);
        }
        // online softmax update; m_use guards the all-masked case (-inf - -inf would be NaN)
        const float m_new = fmaxf(m, mt);
        const float m_use = (m_new == -INFINITY) ? 0.f : m_new;
        const float alpha = exp2f(m - m_use);
        m = m_new;
        l *= alpha;
#pragma unroll
        for (int d = 0; d < 16; d++) o[d] *= alpha;
        float p[BK / TPR];
#pragma unroll
        for (int x = 0; x < BK / TPR; x++) { p[x] = exp2f(s[x] - m_use); l += p[x]; }
        // o += p_j v_j: p_j lives in lane (row base + j % TPR), fetched by shuffle
        const int row_lane0 = lane & ~(TPR - 1);
#pragma unroll
        for (int jj = 0; jj < BK; jj++) {
            float pj = __shfl_sync(0xffffffffu, p[jj / TPR], row_lane0 + (jj % TPR));
            float vf[16];
            unpack_bf16x8(*reinterpret_cast<const uint4*>(Vs + jj * D + 8 * c), vf);
            unpack_bf16x8(*reinterpret_cast<const uint4*>(Vs + jj * D + 8 * (c + TPR)), vf + 8);
#pragma unroll
            for (int d = 0; d < 16; d++) o[d] = fmaf(pj, vf[d], o[d]);
        }
    }
    // the row's sum is spread over its TPR lanes
#pragma unroll
    for (int off = TPR / 2; off > 0; off /= 2) l += __shfl_xor_sync(0xffffffffu, l, off);
    if (i < T) {
        const float inv = (l > 0.f) ? 1.f / l : 0.f;
#pragma unroll
        for (int d = 0; d < 16; d++) o[d] *= inv;
        bf16* orow = out + ((size_t)(b * T + i) * NH + h) * D;
        *reinterpret_cast<uint4*>(orow + 8 * c) = pack_bf16x8(o);
        *reinterpret_cast<uint4*>(orow + 8 * (c + TPR)) = pack_bf16x8(o + 8);
        if (c == 0) lse[(size_t)(b * NH + h) * T + i] = (m + log2f(l)) * LN2;
    }
}

// @copy-begin attn-forward-tiles
// ----------------------------------------------------------------------------
// kernels 3 and 4 (and 5-7 after them): tensor cores. Block per (b, h, 64-query tile), 4 warps,
// warp w owns query rows [16w, 16w+16) of the tile. Smem rows are padded to D + 8 elements:
// consecutive rows then start 16 B apart modulo 128 B, so the 8 row addresses of every ldmatrix hit
// 8 different bank groups.

constexpr int TC_BQ = 64, TC_BK = 64, TC_THREADS = 128;
// @copy-end attn-forward-tiles

// One key tile for one warp: S = Q K^T (mma), mask if the tile is an edge tile for this warp,
// online softmax on the accumulators, O += P V with P converted to bf16 A-fragments in registers.
// Thread (g = lane/4, tg = lane%4) holds rows g and g+8 of the warp's 16 rows.
template<int D>
__device__ __forceinline__ void fwd_tile_mma(float (&o)[D / 8][4], float (&m)[2], float (&l)[2],
                                             const uint32_t (&qf)[D / 16][4],
                                             const bf16* Ks, const bf16* Vs, int k0, int wq0,
                                             int lane, int W, int S, int T, float sl2) {
    constexpr int BK = TC_BK, LDS = D + 8;
    const int g = lane / 4, tg = lane % 4;

    // S = Q K^T: 16 rows x 64 keys, 8 n-tiles of 8 keys. B fragments come straight from K's rows
    // (B = K^T is "col"-major = K row-major): matrices (keys +0..7, dims +0..7), (keys +0..7, dims +8..15),
    // (keys +8..15, dims +0..7), (keys +8..15, dims +8..15) -> b0,b1 of n-tile 2np and of 2np+1.
    float sacc[BK / 8][4];
#pragma unroll
    for (int t = 0; t < BK / 8; t++) { sacc[t][0] = sacc[t][1] = sacc[t][2] = sacc[t][3] = 0.f; }
#pragma unroll
    for (int kc = 0; kc < D / 16; kc++) {
#pragma unroll
        for (int np = 0; np < BK / 16; np++) {
            uint32_t bfr[4];
            ldmatrix_x4(bfr, Ks + (np * 16 + (lane % 8) + (lane / 16) * 8) * LDS + kc * 16 + ((lane / 8) % 2) * 8);
            mma_bf16_16816(sacc[2 * np], qf[kc], bfr);
            mma_bf16_16816(sacc[2 * np + 1], qf[kc], bfr + 2);
        }
    }

    // mask only where this warp's 16 x 64 block is not entirely allowed (warp-uniform branch)
    if (!block_fully_allowed(wq0, 16, k0, BK, W, S, T)) {
#pragma unroll
        for (int t = 0; t < BK / 8; t++) {
#pragma unroll
            for (int e = 0; e < 4; e++) {
                int row = wq0 + g + (e / 2) * 8;
                int key = k0 + t * 8 + 2 * tg + (e % 2);
                if (!attn_valid(row, key, W, S, T)) sacc[t][e] = -INFINITY;
            }
        }
    }

    // row max over the tile: each row is spread over the 4 lanes of a quad
    float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int t = 0; t < BK / 8; t++) {
        mx[0] = fmaxf(mx[0], fmaxf(sacc[t][0], sacc[t][1]));
        mx[1] = fmaxf(mx[1], fmaxf(sacc[t][2], sacc[t][3]));
    }
    float mu[2];
#pragma unroll
    for (int r = 0; r < 2; r++) {
        mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
        mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
        const float m_new = fmaxf(m[r], mx[r] * sl2);
        mu[r] = (m_new == -INFINITY) ? 0.f : m_new;   // all-masked so far: avoid -inf - -inf
        const float alpha = exp2f(m[r] - mu[r]);
        m[r] = m_new;
        l[r] *= alpha;
#pragma unroll
        for (int n = 0; n < D / 8; n++) { o[n][2 * r] *= alpha; o[n][2 * r + 1] *= alpha; }
    }
    // P = exp2(s * sl2 - m); l keeps the per-lane partial sum (reduced across the quad at the end)
#pragma unroll
    for (int t = 0; t < BK / 8; t++) {
#pragma unroll
        for (int e = 0; e < 4; e++) {
            float p = exp2f(fmaf(sacc[t][e], sl2, -mu[e / 2]));
            sacc[t][e] = p;
            l[e / 2] += p;
        }
    }

    // O += P V. The S accumulators of n-tiles 2kc and 2kc+1 are exactly the A fragment of key chunk kc.
    // V is (keys, dims) row-major = K x N row-major, so its B fragments need ldmatrix.trans:
    // matrices (keys +0..7, dims +0..7), (keys +8..15, dims +0..7), (keys +0..7, dims +8..15), (keys +8..15, dims +8..15)
#pragma unroll
    for (int kc = 0; kc < BK / 16; kc++) {
        uint32_t a[4];
        a[0] = pack_bf16x2(sacc[2 * kc][0], sacc[2 * kc][1]);
        a[1] = pack_bf16x2(sacc[2 * kc][2], sacc[2 * kc][3]);
        a[2] = pack_bf16x2(sacc[2 * kc + 1][0], sacc[2 * kc + 1][1]);
        a[3] = pack_bf16x2(sacc[2 * kc + 1][2], sacc[2 * kc + 1][3]);
#pragma unroll
        for (int np = 0; np < D / 16; np++) {
            uint32_t bfr[4];
            ldmatrix_x4_trans(bfr, Vs + (kc * 16 + (lane % 8) + ((lane / 8) % 2) * 8) * LDS + np * 16 + (lane / 16) * 8);
            mma_bf16_16816(o[2 * np], a, bfr);
            mma_bf16_16816(o[2 * np + 1], a, bfr + 2);
        }
    }
}

// @copy-begin attn-forward-epilogue
// Q fragments of this warp's 16 rows, all D/16 k-chunks: matrices (rows +0..7, dims +0..7),
// (rows +8..15, dims +0..7), (rows +0..7, dims +8..15), (rows +8..15, dims +8..15) = a0..a3
template<int D>
__device__ __forceinline__ void load_q_frags(uint32_t (&qf)[D / 16][4], const bf16* Qs, int warp, int lane) {
    constexpr int LDS = D + 8;
#pragma unroll
    for (int kc = 0; kc < D / 16; kc++)
        ldmatrix_x4(qf[kc], Qs + (warp * 16 + (lane % 16)) * LDS + kc * 16 + (lane / 16) * 8);
}

// Epilogue shared by v3, v4, v6, v7: normalize, stage the warp's 16 bf16 rows in its own rows of Qs (no
// other warp ever reads them), then write whole 16-byte chunks of out rows, and the lse.
template<int D>
__device__ __forceinline__ void fwd_epilogue(bf16* out, float* lse, bf16* Qs, float (&o)[D / 8][4],
                                             float (&m)[2], float (&l)[2], int b, int h, int T, int NH,
                                             int q0, int warp, int lane) {
    constexpr int LDS = D + 8, CH = D / 8;
    const int g = lane / 4, tg = lane % 4;
    float inv[2];
#pragma unroll
    for (int r = 0; r < 2; r++) {
        l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
        l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
        inv[r] = (l[r] > 0.f) ? 1.f / l[r] : 0.f;
    }
    __syncwarp();
    bf16* my = Qs + warp * 16 * LDS;
#pragma unroll
    for (int n = 0; n < D / 8; n++) {
        *reinterpret_cast<uint32_t*>(my + g * LDS + n * 8 + 2 * tg) = pack_bf16x2(o[n][0] * inv[0], o[n][1] * inv[0]);
        *reinterpret_cast<uint32_t*>(my + (g + 8) * LDS + n * 8 + 2 * tg) = pack_bf16x2(o[n][2] * inv[1], o[n][3] * inv[1]);
    }
    __syncwarp();
    for (int x = lane; x < 16 * CH; x += 32) {
        int rr = x / CH, cc = x % CH, t = q0 + warp * 16 + rr;
        if (t < T)
            *reinterpret_cast<uint4*>(out + ((size_t)(b * T + t) * NH + h) * D + cc * 8) =
                *reinterpret_cast<const uint4*>(my + rr * LDS + cc * 8);
    }
    if (tg == 0) {
#pragma unroll
        for (int r = 0; r < 2; r++) {
            int row = q0 + warp * 16 + g + 8 * r;
            if (row < T) lse[(size_t)(b * NH + h) * T + row] = (m[r] + log2f(l[r])) * LN2;
        }
    }
}
// @copy-end attn-forward-epilogue

// kernel 3: tensor cores. Loads go global -> registers -> smem, then __syncthreads, then compute:
// no overlap of load and math inside a block (other resident blocks hide some of it).
// Expected gain over v2: ~10x (mma.sync bf16 vs fp32 FMA + shuffles); limited by load stalls.
template<int D>
__global__ void __launch_bounds__(TC_THREADS)
attention_forward_kernel3(bf16* out, float* lse, const bf16* qkv, int B, int T, int NH, int W, int S) {
    constexpr int BQ = TC_BQ, BK = TC_BK, NT = TC_THREADS, LDS = D + 8, CH = D / 8;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    bf16* Qs = reinterpret_cast<bf16*>(smem_raw);   // (BQ, LDS)
    bf16* Ks = Qs + BQ * LDS;                       // (BK, LDS)
    bf16* Vs = Ks + BK * LDS;                       // (BK, LDS)

    const int bh = blockIdx.x, b = bh / NH, h = bh % NH;
    const int qt = gridDim.y - 1 - blockIdx.y;      // longest tiles first
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
    const int q0 = qt * BQ;
    const size_t C = (size_t)NH * D, C3 = 3 * C;
    const bf16* qbase = qkv + (size_t)b * T * C3 + h * D;
    const bf16* kbase = qbase + C;
    const bf16* vbase = qbase + 2 * C;
    const float sl2 = LOG2E / sqrtf((float)D);

    // Q tile -> smem (rows past T zero) -> fragments in registers for the whole kernel
    for (int x = tid; x < BQ * CH; x += NT) {
        int rr = x / CH, cc = x % CH, t = q0 + rr;
        uint4 u = make_uint4(0, 0, 0, 0);
        if (t < T) u = *reinterpret_cast<const uint4*>(qbase + (size_t)t * C3 + cc * 8);
        *reinterpret_cast<uint4*>(Qs + rr * LDS + cc * 8) = u;
    }
    __syncthreads();
    uint32_t qf[D / 16][4];
    load_q_frags<D>(qf, Qs, warp, lane);

    float o[D / 8][4];
#pragma unroll
    for (int n = 0; n < D / 8; n++) { o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.f; }
    float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};

    const int q_last = min(q0 + BQ, T) - 1;
    const KeyTileRange kr = key_tiles_for_queries(q0, q_last, W, S, BK);
    const int ntiles = key_tile_count(kr);
    for (int it = 0; it < ntiles; it++) {
        const int k0 = key_tile_at(kr, it) * BK;
        __syncthreads();   // all warps are done with the previous K/V tile
        for (int x = tid; x < BK * CH; x += NT) {
            int kk = x / CH, cc = x % CH, j = k0 + kk;
            uint4 kv = make_uint4(0, 0, 0, 0), vv = make_uint4(0, 0, 0, 0);
            if (j < T) {
                kv = *reinterpret_cast<const uint4*>(kbase + (size_t)j * C3 + cc * 8);
                vv = *reinterpret_cast<const uint4*>(vbase + (size_t)j * C3 + cc * 8);
            }
            *reinterpret_cast<uint4*>(Ks + kk * LDS + cc * 8) = kv;
            *reinterpret_cast<uint4*>(Vs + kk * LDS + cc * 8) = vv;
        }
        __syncthreads();
        fwd_tile_mma<D>(o, m, l, qf, Ks, Vs, k0, q0 + warp * 16, lane, W, S, T, sl2);
    }
    fwd_epilogue<D>(out, lse, Qs, o, m, l, b, h, T, NH, q0, warp, lane);
}

// kernel 4: v3's math, with cp.async double buffering: while the warps compute on K/V tile it, the
// copy engine path streams tile it+1 into the other buffer (zero-fill past T via src-size 0).
// Expected gain over v3: hides most of the global-load latency, ~1.2-1.5x on the long windows.
template<int D>
__global__ void __launch_bounds__(TC_THREADS)
attention_forward_kernel4(bf16* out, float* lse, const bf16* qkv, int B, int T, int NH, int W, int S) {
    constexpr int BQ = TC_BQ, BK = TC_BK, NT = TC_THREADS, LDS = D + 8, CH = D / 8;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    bf16* Qs = reinterpret_cast<bf16*>(smem_raw);   // (BQ, LDS)
    bf16* Ks = Qs + BQ * LDS;                       // (2, BK, LDS)
    bf16* Vs = Ks + 2 * BK * LDS;                   // (2, BK, LDS)

    const int bh = blockIdx.x, b = bh / NH, h = bh % NH;
    const int qt = gridDim.y - 1 - blockIdx.y;
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
    const int q0 = qt * BQ;
    const size_t C = (size_t)NH * D, C3 = 3 * C;
    const bf16* qbase = qkv + (size_t)b * T * C3 + h * D;
    const bf16* kbase = qbase + C;
    const bf16* vbase = qbase + 2 * C;
    const float sl2 = LOG2E / sqrtf((float)D);

    const int q_last = min(q0 + BQ, T) - 1;
    const KeyTileRange kr = key_tiles_for_queries(q0, q_last, W, S, BK);
    const int ntiles = key_tile_count(kr);

    // issue the async copies of key tile `it` into buffer `buf` (rows past T: zero-fill, clamped address)
    auto load_kv = [&](int it, int buf) {
        const int k0 = key_tile_at(kr, it) * BK;
        for (int x = tid; x < BK * CH; x += NT) {
            int kk = x / CH, cc = x % CH, j = k0 + kk;
            bool ok = j < T;
            size_t jr = ok ? (size_t)j : 0;
            cp_async_16(Ks + (buf * BK + kk) * LDS + cc * 8, kbase + jr * C3 + cc * 8, ok);
            cp_async_16(Vs + (buf * BK + kk) * LDS + cc * 8, vbase + jr * C3 + cc * 8, ok);
        }
    };

    // prologue: group 0 = Q, group 1 = K/V tile 0
    for (int x = tid; x < BQ * CH; x += NT) {
        int rr = x / CH, cc = x % CH, t = q0 + rr;
        bool ok = t < T;
        cp_async_16(Qs + rr * LDS + cc * 8, qbase + (ok ? (size_t)t : 0) * C3 + cc * 8, ok);
    }
    cp_async_commit();
    load_kv(0, 0);
    cp_async_commit();
    cp_async_wait<1>();   // Q has landed (tile 0 may still be in flight)
    __syncthreads();
    uint32_t qf[D / 16][4];
    load_q_frags<D>(qf, Qs, warp, lane);

    float o[D / 8][4];
#pragma unroll
    for (int n = 0; n < D / 8; n++) { o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.f; }
    float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};

    for (int it = 0; it < ntiles; it++) {
        // buffer (it+1)&1 was last read in iteration it-1, which ended with __syncthreads
        if (it + 1 < ntiles) {
            load_kv(it + 1, (it + 1) & 1);
            cp_async_commit();
            cp_async_wait<1>();   // everything but the newest group (tile it+1) is complete
        } else {
            cp_async_wait<0>();
        }
        __syncthreads();          // tile it is visible to every warp
        const int buf = it & 1;
        fwd_tile_mma<D>(o, m, l, qf, Ks + buf * BK * LDS, Vs + buf * BK * LDS,
                        key_tile_at(kr, it) * BK, q0 + warp * 16, lane, W, S, T, sl2);
        __syncthreads();          // all warps are done with buffer `buf` before it is refilled
    }
    fwd_epilogue<D>(out, lse, Qs, o, m, l, b, h, T, NH, q0, warp, lane);
}

// ----------------------------------------------------------------------------
// kernel launchers

template<int D>
void attention_forward1(bf16* out, float* lse, const bf16* qkv, int B, int T, int NH, int W, int S) {
    const int block_size = 128;
    const int n = B * NH * T;
    attention_forward_kernel1<D><<<ceil_div(n, block_size), block_size>>>(out, lse, qkv, B, T, NH, W, S);
    cudaCheckLaunch();
}

template<int D>
void attention_forward2(bf16* out, float* lse, const bf16* qkv, int B, int T, int NH, int W, int S) {
    dim3 grid(B * NH, ceil_div(T, 64));
    attention_forward_kernel2<D><<<grid, 64 * (D / 16)>>>(out, lse, qkv, B, T, NH, W, S);
    cudaCheckLaunch();
}

template<int D>
void attention_forward3(bf16* out, float* lse, const bf16* qkv, int B, int T, int NH, int W, int S) {
    const size_t smem = (size_t)(TC_BQ + 2 * TC_BK) * (D + 8) * sizeof(bf16);
    static bool configured = false;   // opt in to > 48 KB once (D = 128 needs 52 KB)
    if (!configured) {
        cudaCheck(cudaFuncSetAttribute(attention_forward_kernel3<D>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
        configured = true;
    }
    dim3 grid(B * NH, ceil_div(T, TC_BQ));
    attention_forward_kernel3<D><<<grid, TC_THREADS, smem>>>(out, lse, qkv, B, T, NH, W, S);
    cudaCheckLaunch();
}

template<int D>
void attention_forward4(bf16* out, float* lse, const bf16* qkv, int B, int T, int NH, int W, int S) {
    const size_t smem = (size_t)(TC_BQ + 4 * TC_BK) * (D + 8) * sizeof(bf16);
    static bool configured = false;
    if (!configured) {
        cudaCheck(cudaFuncSetAttribute(attention_forward_kernel4<D>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
        configured = true;
    }
    dim3 grid(B * NH, ceil_div(T, TC_BQ));
    attention_forward_kernel4<D><<<grid, TC_THREADS, smem>>>(out, lse, qkv, B, T, NH, W, S);
    cudaCheckLaunch();
}

// ----------------------------------------------------------------------------
// version 5 (kernel, tile function, epilogue, launcher: this whole region)
// v5: 128 queries per block at D = 64, 4 warps x 32 rows (two m16 tiles per warp), so every K/V
// fragment that ldmatrix brings in feeds two mma (half the shared-memory traffic per mma, which was
// v4's bound: one ldmatrix.x4 of 512 B per two mma); warps skip the 16-key chunks of a tile that hold
// no allowed pair for their 32 rows (band edges, the 4 sinks of a 64-key sink tile, the diagonal);
// one __syncthreads per tile; ex2.approx.ftz; the O/l rescale only when some row's max grew by more
// than 2^8 (else the stale max is kept: P <= 256, exact in the normalisation). D = 128: one m16 tile
// per warp (64 queries per block; two would not fit in registers).
// Predicted (written before measuring): full causal 1.3x v4 (~270 TFLOP/s), W = 256 ~1.4x (~135),
// W = 1024 ~1.35x (~225).

template<int D> __host__ __device__ constexpr int fwd5_mt() { return D == 64 ? 2 : 1; }

// One 64-key tile for one warp owning rows [wq0, wq0 + 16 MT). o/m/l/qf as in v3 with one more
// index for the m16 tile. m is in log2 units and may lag the true running max by up to 8.
template<int D, int MT>
__device__ __forceinline__ void fwd5_tile(float (&o)[MT][D / 8][4], float (&m)[MT][2], float (&l)[MT][2],
                                          const uint32_t (&qf)[MT][D / 16][4],
                                          const bf16* Ks, const bf16* Vs, int k0, int wq0,
                                          int lane, int W, int S, int T, float sl2) {
    constexpr int BK = TC_BK, LDS = D + 8, NC = BK / 16, WR = 16 * MT;
    const int g = lane / 4, tg = lane % 4;
    unsigned need = 0;   // 16-key chunks with an allowed pair for some row of this warp (warp-uniform)
#pragma unroll
    for (int c = 0; c < NC; c++)
        if (block_any_allowed(wq0, WR, k0 + 16 * c, 16, W, S, T)) need |= 1u << c;
    if (need == 0) return;

    float sacc[MT][BK / 8][4];
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int t = 0; t < BK / 8; t++) { sacc[mt][t][0] = sacc[mt][t][1] = sacc[mt][t][2] = sacc[mt][t][3] = 0.f; }
#pragma unroll
    for (int kc = 0; kc < D / 16; kc++) {
#pragma unroll
        for (int np = 0; np < NC; np++) {
            if (need & (1u << np)) {
                uint32_t bfr[4];
                ldmatrix_x4(bfr, Ks + (np * 16 + (lane % 8) + (lane / 16) * 8) * LDS + kc * 16 + ((lane / 8) % 2) * 8);
#pragma unroll
                for (int mt = 0; mt < MT; mt++) {
                    mma_bf16_16816(sacc[mt][2 * np], qf[mt][kc], bfr);
                    mma_bf16_16816(sacc[mt][2 * np + 1], qf[mt][kc], bfr + 2);
                }
            }
        }
    }
    // per-element mask where the warp's 32 x 64 block is not entirely allowed; skipped chunks are
    // masked here too (no pair in them is allowed), so they never reach the max
    if (!block_fully_allowed(wq0, WR, k0, BK, W, S, T)) {
        // attn_valid(row, key) per element, from per-row bounds relative to the thread's first key:
        // allowed iff kk <= hi and (kk >= lo or kk < sk), kk = key - (k0 + 2 tg)
        const int kb = k0 + 2 * tg, sk = S - kb;
#pragma unroll
        for (int mt = 0; mt < MT; mt++)
#pragma unroll
            for (int r = 0; r < 2; r++) {
                const int row = wq0 + mt * 16 + g + 8 * r;
                const int hi = (row < T) ? row - kb : -1 - BK;          // causal (rows past T: none)
                const int lo = (W > 0) ? row - W + 1 - kb : -BK;        // band start
#pragma unroll
                for (int t = 0; t < BK / 8; t++)
#pragma unroll
                    for (int e = 0; e < 2; e++) {
                        const int kk = t * 8 + e;
                        if (!(kk <= hi && (kk >= lo || kk < sk))) sacc[mt][t][2 * r + e] = -INFINITY;
                    }
            }
    }
    // row max (quad shuffles), lazy rescale: only when some row of the warp grew by > 8 (log2 units)
    float mnew[MT][2];
    bool grow = false;
#pragma unroll
    for (int mt = 0; mt < MT; mt++) {
        float mx0 = -INFINITY, mx1 = -INFINITY;
#pragma unroll
        for (int t = 0; t < BK / 8; t++) {
            mx0 = fmaxf(mx0, fmaxf(sacc[mt][t][0], sacc[mt][t][1]));
            mx1 = fmaxf(mx1, fmaxf(sacc[mt][t][2], sacc[mt][t][3]));
        }
        mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
        mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
        mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
        mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
        mnew[mt][0] = fmaxf(m[mt][0], mx0 * sl2);
        mnew[mt][1] = fmaxf(m[mt][1], mx1 * sl2);
        // m = -inf, mnew finite: inf > 8 (rescale); both -inf: NaN > 8 is false (row still empty)
        grow |= (mnew[mt][0] - m[mt][0] > 8.f) || (mnew[mt][1] - m[mt][1] > 8.f);
    }
    if (__any_sync(0xffffffffu, grow)) {
#pragma unroll
        for (int mt = 0; mt < MT; mt++)
#pragma unroll
            for (int r = 0; r < 2; r++) {
                const float mu = (mnew[mt][r] == -INFINITY) ? 0.f : mnew[mt][r];
                const float alpha = ex2_approx(m[mt][r] - mu);   // m = -inf: 0 (o, l are 0 anyway)
                m[mt][r] = mnew[mt][r];
                l[mt][r] *= alpha;
#pragma unroll
                for (int n = 0; n < D / 8; n++) { o[mt][n][2 * r] *= alpha; o[mt][n][2 * r + 1] *= alpha; }
            }
    }
    // P = 2^(s sl2 - m) on the needed chunks; per-lane partial row sums
#pragma unroll
    for (int mt = 0; mt < MT; mt++) {
        float mu[2];
#pragma unroll
        for (int r = 0; r < 2; r++) mu[r] = (m[mt][r] == -INFINITY) ? 0.f : m[mt][r];
#pragma unroll
        for (int t = 0; t < BK / 8; t++) {
            if (need & (1u << (t / 2))) {
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    float p = ex2_approx(fmaf(sacc[mt][t][e], sl2, -mu[e / 2]));
                    sacc[mt][t][e] = p;
                    l[mt][e / 2] += p;
                }
            }
        }
    }
    // O += P V over the needed key chunks; each V fragment feeds MT m16 tiles
#pragma unroll
    for (int kc = 0; kc < NC; kc++) {
        if (need & (1u << kc)) {
            uint32_t a[MT][4];
#pragma unroll
            for (int mt = 0; mt < MT; mt++) {
                a[mt][0] = pack_bf16x2(sacc[mt][2 * kc][0], sacc[mt][2 * kc][1]);
                a[mt][1] = pack_bf16x2(sacc[mt][2 * kc][2], sacc[mt][2 * kc][3]);
                a[mt][2] = pack_bf16x2(sacc[mt][2 * kc + 1][0], sacc[mt][2 * kc + 1][1]);
                a[mt][3] = pack_bf16x2(sacc[mt][2 * kc + 1][2], sacc[mt][2 * kc + 1][3]);
            }
#pragma unroll
            for (int np = 0; np < D / 16; np++) {
                uint32_t bfr[4];
                ldmatrix_x4_trans(bfr, Vs + (kc * 16 + (lane % 8) + ((lane / 8) % 2) * 8) * LDS + np * 16 + (lane / 16) * 8);
#pragma unroll
                for (int mt = 0; mt < MT; mt++) {
                    mma_bf16_16816(o[mt][2 * np], a[mt], bfr);
                    mma_bf16_16816(o[mt][2 * np + 1], a[mt], bfr + 2);
                }
            }
        }
    }
}

// 4 warps; warp w owns rows [w 16 MT, (w+1) 16 MT) of the block's 64 MT queries.
// smem: Q (BQ, LDS) (each warp reads, and at the end overwrites, only its own rows), K/V (2, BK, LDS).
template<int D, int MT>
__global__ void __launch_bounds__(TC_THREADS)
attention_forward_kernel5(bf16* out, float* lse, const bf16* qkv, int B, int T, int NH, int W, int S) {
    constexpr int WR = 16 * MT, BQ = 4 * WR, BK = TC_BK, NT = TC_THREADS, LDS = D + 8, CH = D / 8;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    bf16* Qs = reinterpret_cast<bf16*>(smem_raw);   // (BQ, LDS)
    bf16* Ks = Qs + BQ * LDS;                       // (2, BK, LDS)
    bf16* Vs = Ks + 2 * BK * LDS;                   // (2, BK, LDS)

    const int bh = blockIdx.x, b = bh / NH, h = bh % NH;
    const int qt = gridDim.y - 1 - blockIdx.y;      // the longest (last) query tiles first
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
    const int g = lane / 4, tg = lane % 4;
    const int q0 = qt * BQ, wq0 = q0 + warp * WR;
    const size_t C = (size_t)NH * D, C3 = 3 * C;
    const bf16* qbase = qkv + (size_t)b * T * C3 + h * D;
    const bf16* kbase = qbase + C;
    const bf16* vbase = qbase + 2 * C;
    const float sl2 = LOG2E / sqrtf((float)D);

    const int q_last = min(q0 + BQ, T) - 1;
    const KeyTileRange kr = key_tiles_for_queries(q0, q_last, W, S, BK);
    const int ntiles = key_tile_count(kr);

    auto load_kv = [&](int it, int buf) {
        const int k0 = key_tile_at(kr, it) * BK;
        for (int x = tid; x < BK * CH; x += NT) {
            int kk = x / CH, cc = x % CH, j = k0 + kk;
            bool ok = j < T;
            size_t jr = ok ? (size_t)j : 0;
            cp_async_16(Ks + (buf * BK + kk) * LDS + cc * 8, kbase + jr * C3 + cc * 8, ok);
            cp_async_16(Vs + (buf * BK + kk) * LDS + cc * 8, vbase + jr * C3 + cc * 8, ok);
        }
    };

    // prologue: Q and key tile 0 in one group
    for (int x = tid; x < BQ * CH; x += NT) {
        int rr = x / CH, cc = x % CH, t = q0 + rr;
        bool ok = t < T;
        cp_async_16(Qs + rr * LDS + cc * 8, qbase + (ok ? (size_t)t : 0) * C3 + cc * 8, ok);
    }
    load_kv(0, 0);
    cp_async_commit();
    cp_async_wait<0>();
    __syncthreads();
    uint32_t qf[MT][D / 16][4];
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int kc = 0; kc < D / 16; kc++)
            ldmatrix_x4(qf[mt][kc], Qs + (warp * WR + mt * 16 + (lane % 16)) * LDS + kc * 16 + (lane / 16) * 8);

    float o[MT][D / 8][4], m[MT][2], l[MT][2];
#pragma unroll
    for (int mt = 0; mt < MT; mt++) {
#pragma unroll
        for (int n = 0; n < D / 8; n++) { o[mt][n][0] = o[mt][n][1] = o[mt][n][2] = o[mt][n][3] = 0.f; }
        m[mt][0] = m[mt][1] = -INFINITY;
        l[mt][0] = l[mt][1] = 0.f;
    }

    for (int it = 0; it < ntiles; it++) {
        if (it > 0) {
            cp_async_wait<0>();   // tile it (the only group in flight) has landed
            __syncthreads();      // ... for every thread, and every warp is done with tile it-1
        }
        // buffer (it+1)&1 held tile it-1: free after the barrier above
        if (it + 1 < ntiles) {
            load_kv(it + 1, (it + 1) & 1);
            cp_async_commit();
        }
        const int buf = it & 1;
        fwd5_tile<D, MT>(o, m, l, qf, Ks + buf * BK * LDS, Vs + buf * BK * LDS,
                         key_tile_at(kr, it) * BK, wq0, lane, W, S, T, sl2);
    }

    // epilogue: normalise, stage bf16 rows in the warp's own Q rows, 16-byte stores, lse
    bf16* my = Qs + warp * WR * LDS;
    __syncwarp();   // every lane's ldmatrix of these Q rows is done before any lane overwrites them
#pragma unroll
    for (int mt = 0; mt < MT; mt++) {
        float inv[2];
#pragma unroll
        for (int r = 0; r < 2; r++) {
            l[mt][r] += __shfl_xor_sync(0xffffffffu, l[mt][r], 1);
            l[mt][r] += __shfl_xor_sync(0xffffffffu, l[mt][r], 2);
            inv[r] = (l[mt][r] > 0.f) ? 1.f / l[mt][r] : 0.f;
        }
#pragma unroll
        for (int n = 0; n < D / 8; n++) {
            *reinterpret_cast<uint32_t*>(my + (mt * 16 + g) * LDS + n * 8 + 2 * tg) =
                pack_bf16x2(o[mt][n][0] * inv[0], o[mt][n][1] * inv[0]);
            *reinterpret_cast<uint32_t*>(my + (mt * 16 + g + 8) * LDS + n * 8 + 2 * tg) =
                pack_bf16x2(o[mt][n][2] * inv[1], o[mt][n][3] * inv[1]);
        }
        if (tg == 0) {
#pragma unroll
            for (int r = 0; r < 2; r++) {
                int row = wq0 + mt * 16 + g + 8 * r;
                if (row < T) lse[(size_t)(b * NH + h) * T + row] = (m[mt][r] + log2f(l[mt][r])) * LN2;
            }
        }
    }
    __syncwarp();
    for (int x = lane; x < WR * CH; x += 32) {
        int rr = x / CH, cc = x % CH, t = wq0 + rr;
        if (t < T)
            *reinterpret_cast<uint4*>(out + ((size_t)(b * T + t) * NH + h) * D + cc * 8) =
                *reinterpret_cast<const uint4*>(my + rr * LDS + cc * 8);
    }
}

template<int D>
void attention_forward5(bf16* out, float* lse, const bf16* qkv, int B, int T, int NH, int W, int S) {
    constexpr int MT = fwd5_mt<D>(), BQ = 4 * 16 * MT;
    const size_t smem = (size_t)(BQ + 4 * TC_BK) * (D + 8) * sizeof(bf16);
    static bool configured = false;
    if (!configured) {
        cudaCheck(cudaFuncSetAttribute(attention_forward_kernel5<D, MT>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
        configured = true;
    }
    dim3 grid(B * NH, ceil_div(T, BQ));
    attention_forward_kernel5<D, MT><<<grid, TC_THREADS, smem>>>(out, lse, qkv, B, T, NH, W, S);
    cudaCheckLaunch();
}
// ---- end of version 5

// ----------------------------------------------------------------------------
// version 6 (tile functions, kernel, launcher: this whole region; the epilogue is v3's fwd_epilogue)
// v6: back to v4's shape (4 warps x 16 rows, 64-query blocks, now 3 blocks per SM by launch bounds)
// with the tile loop software-pipelined inside each warp: the Q K^T mma of key tile it+1 are issued
// before the mask/max/exp/sum of tile it, so the tensor cores run while the warp does the softmax
// (v4 and v5 serialize QK -> softmax -> PV in every warp: v5's measurement showed that halving the
// ldmatrix traffic bought nothing, so the bound is latency, not shared memory). K runs one tile
// ahead of V in separate cp.async groups. Kept from v5: ex2.approx.ftz, lazy rescale, 16-key chunk
// skipping (as predicated mma only: the exp phase has no branches, so the compiler can interleave it
// with the next tile's mma).
// Predicted (written before measuring): full causal ~1.3x v4 (~265 TFLOP/s), W = 1024 ~1.25x,
// W = 256 ~1.15x.

// @copy-begin attn-forward-v6-tiles
// v6's tile functions, which v7 runs too: 3 blocks per SM (D = 64), the 16-key chunks of a tile
// with an allowed pair, S = Q K^T on those chunks, and mask / softmax / O += P V
template<int D> __host__ __device__ constexpr int fwd6_min_blocks() { return D == 64 ? 3 : 2; }

// 16-key chunks of key tile k0 with an allowed pair for the warp's 16 rows (bit c: chunk c)
__device__ __forceinline__ unsigned fwd6_need(int wq0, int k0, int W, int S, int T) {
    unsigned need = 0;
#pragma unroll
    for (int c = 0; c < TC_BK / 16; c++)
        if (block_any_allowed(wq0, 16, k0 + 16 * c, 16, W, S, T)) need |= 1u << c;
    return need;
}

// s = Q K^T for one warp (16 rows x 64 keys); chunks not in `need` stay 0 (the mask removes them)
template<int D>
__device__ __forceinline__ void fwd6_qk(float (&s)[TC_BK / 8][4], const uint32_t (&qf)[D / 16][4],
                                        const bf16* Ks, unsigned need, int lane) {
    constexpr int LDS = D + 8, NC = TC_BK / 16;
#pragma unroll
    for (int t = 0; t < TC_BK / 8; t++) { s[t][0] = s[t][1] = s[t][2] = s[t][3] = 0.f; }
#pragma unroll
    for (int kc = 0; kc < D / 16; kc++) {
        uint32_t bfr[NC][4];
#pragma unroll
        for (int np = 0; np < NC; np++)
            if (need & (1u << np))
                ldmatrix_x4(bfr[np], Ks + (np * 16 + (lane % 8) + (lane / 16) * 8) * LDS + kc * 16 + ((lane / 8) % 2) * 8);
#pragma unroll
        for (int np = 0; np < NC; np++) {
            if (need & (1u << np)) {
                mma_bf16_16816(s[2 * np], qf[kc], bfr[np]);
                mma_bf16_16816(s[2 * np + 1], qf[kc], bfr[np] + 2);
            }
        }
    }
}

// the band + sink mask of an edge tile (s = -inf where the pair is not allowed or the row is past T)
__device__ __forceinline__ void fwd6_band_mask(float (&s)[TC_BK / 8][4], int k0, int wq0, int lane, int W, int S, int T) {
    constexpr int BK = TC_BK;
    const int g = lane / 4, tg = lane % 4;
    if (!block_fully_allowed(wq0, 16, k0, BK, W, S, T)) {
        const int kb = k0 + 2 * tg, sk = S - kb;
#pragma unroll
        for (int r = 0; r < 2; r++) {
            const int row = wq0 + g + 8 * r;
            const int hi = (row < T) ? row - kb : -1 - BK;
            const int lo = (W > 0) ? row - W + 1 - kb : -BK;
#pragma unroll
            for (int t = 0; t < BK / 8; t++)
#pragma unroll
                for (int e = 0; e < 2; e++) {
                    const int kk = t * 8 + e;
                    if (!(kk <= hi && (kk >= lo || kk < sk))) s[t][2 * r + e] = -INFINITY;
                }
        }
    }
}

// max, lazy rescale, P = 2^(s sl2 - m), row sums, O += P V for one warp, on scores already masked
// (-inf where not allowed): shared by the band kernels (after fwd6_band_mask) and the general
// path's tile version (after its own mask)
template<int D>
__device__ __forceinline__ void fwd_softmax_pv(float (&o)[D / 8][4], float (&m)[2], float (&l)[2],
                                               float (&s)[TC_BK / 8][4], const bf16* Vs, unsigned need, int lane, float sl2) {
    constexpr int BK = TC_BK, LDS = D + 8, NC = BK / 16;
    float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int t = 0; t < BK / 8; t++) {
        mx[0] = fmaxf(mx[0], fmaxf(s[t][0], s[t][1]));
        mx[1] = fmaxf(mx[1], fmaxf(s[t][2], s[t][3]));
    }
    float mnew[2];
    bool grow = false;
#pragma unroll
    for (int r = 0; r < 2; r++) {
        mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
        mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
        mnew[r] = fmaxf(m[r], mx[r] * sl2);
        grow |= (mnew[r] - m[r] > 8.f);   // -inf -> finite: inf > 8; -inf -> -inf: NaN, false
    }
    if (__any_sync(0xffffffffu, grow)) {
#pragma unroll
        for (int r = 0; r < 2; r++) {
            const float mu = (mnew[r] == -INFINITY) ? 0.f : mnew[r];
            const float alpha = ex2_approx(m[r] - mu);
            m[r] = mnew[r];
            l[r] *= alpha;
#pragma unroll
            for (int n = 0; n < D / 8; n++) { o[n][2 * r] *= alpha; o[n][2 * r + 1] *= alpha; }
        }
    }
    float mu[2];
#pragma unroll
    for (int r = 0; r < 2; r++) mu[r] = (m[r] == -INFINITY) ? 0.f : m[r];
#pragma unroll
    for (int t = 0; t < BK / 8; t++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
            const float p = ex2_approx(fmaf(s[t][e], sl2, -mu[e / 2]));
            s[t][e] = p;
            l[e / 2] += p;
        }
#pragma unroll
    for (int kc = 0; kc < NC; kc++) {
        if (need & (1u << kc)) {
            uint32_t a[4];
            a[0] = pack_bf16x2(s[2 * kc][0], s[2 * kc][1]);
            a[1] = pack_bf16x2(s[2 * kc][2], s[2 * kc][3]);
            a[2] = pack_bf16x2(s[2 * kc + 1][0], s[2 * kc + 1][1]);
            a[3] = pack_bf16x2(s[2 * kc + 1][2], s[2 * kc + 1][3]);
#pragma unroll
            for (int np = 0; np < D / 16; np++) {
                uint32_t bfr[4];
                ldmatrix_x4_trans(bfr, Vs + (kc * 16 + (lane % 8) + ((lane / 8) % 2) * 8) * LDS + np * 16 + (lane / 16) * 8);
                mma_bf16_16816(o[2 * np], a, bfr);
                mma_bf16_16816(o[2 * np + 1], a, bfr + 2);
            }
        }
    }
}

// mask (edge tiles), then max, lazy rescale, P, row sums, O += P V for one warp
template<int D>
__device__ __forceinline__ void fwd6_softmax_pv(float (&o)[D / 8][4], float (&m)[2], float (&l)[2],
                                                float (&s)[TC_BK / 8][4], const bf16* Vs, int k0, int wq0,
                                                unsigned need, int lane, int W, int S, int T, float sl2) {
    fwd6_band_mask(s, k0, wq0, lane, W, S, T);
    fwd_softmax_pv<D>(o, m, l, s, Vs, need, lane, sl2);
}
// @copy-end attn-forward-v6-tiles

template<int D>
__global__ void __launch_bounds__(TC_THREADS, fwd6_min_blocks<D>())
attention_forward_kernel6(bf16* out, float* lse, const bf16* qkv, int B, int T, int NH, int W, int S) {
    constexpr int BQ = TC_BQ, BK = TC_BK, NT = TC_THREADS, LDS = D + 8, CH = D / 8;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    bf16* Qs = reinterpret_cast<bf16*>(smem_raw);   // (BQ, LDS)
    bf16* Ks = Qs + BQ * LDS;                       // (2, BK, LDS)
    bf16* Vs = Ks + 2 * BK * LDS;                   // (2, BK, LDS)

    const int bh = blockIdx.x, b = bh / NH, h = bh % NH;
    const int qt = gridDim.y - 1 - blockIdx.y;      // longest tiles first
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
    const int q0 = qt * BQ, wq0 = q0 + warp * 16;
    const size_t C = (size_t)NH * D, C3 = 3 * C;
    const bf16* qbase = qkv + (size_t)b * T * C3 + h * D;
    const bf16* kbase = qbase + C;
    const bf16* vbase = qbase + 2 * C;
    const float sl2 = LOG2E / sqrtf((float)D);

    const int q_last = min(q0 + BQ, T) - 1;
    const KeyTileRange kr = key_tiles_for_queries(q0, q_last, W, S, BK);
    const int ntiles = key_tile_count(kr);

    // rows past T: zero-fill from a clamped address
    auto load_rows = [&](bf16* dst, const bf16* src, int k0) {
        for (int x = tid; x < BK * CH; x += NT) {
            int kk = x / CH, cc = x % CH, j = k0 + kk;
            bool ok = j < T;
            cp_async_16(dst + kk * LDS + cc * 8, src + (ok ? (size_t)j : 0) * C3 + cc * 8, ok);
        }
    };
    auto load_k = [&](int it, int buf) { load_rows(Ks + buf * BK * LDS, kbase, key_tile_at(kr, it) * BK); };
    auto load_v = [&](int it, int buf) { load_rows(Vs + buf * BK * LDS, vbase, key_tile_at(kr, it) * BK); };

    // prologue: group {Q, K0}, group {V0, K1}
    for (int x = tid; x < BQ * CH; x += NT) {
        int rr = x / CH, cc = x % CH, t = q0 + rr;
        bool ok = t < T;
        cp_async_16(Qs + rr * LDS + cc * 8, qbase + (ok ? (size_t)t : 0) * C3 + cc * 8, ok);
    }
    load_k(0, 0);
    cp_async_commit();
    load_v(0, 0);
    if (ntiles > 1) load_k(1, 1);
    cp_async_commit();
    cp_async_wait<1>();
    __syncthreads();
    uint32_t qf[D / 16][4];
    load_q_frags<D>(qf, Qs, warp, lane);

    float o[D / 8][4];
#pragma unroll
    for (int n = 0; n < D / 8; n++) { o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.f; }
    float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};

    float sa[BK / 8][4], sb[BK / 8][4];
    unsigned need_a = fwd6_need(wq0, key_tile_at(kr, 0) * BK, W, S, T), need_b = 0;
    fwd6_qk<D>(sa, qf, Ks, need_a, lane);

    // step `it`: S of tile it is in `cur`; issue S of tile it+1 into `nxt`, then finish tile it
    auto step = [&](int it, float (&cur)[BK / 8][4], unsigned need_cur, float (&nxt)[BK / 8][4], unsigned& need_nxt) {
        cp_async_wait<0>();   // V_it and K_{it+1} have landed
        __syncthreads();      // ... for everyone, and step it-1 (V_{it-1}, K_it) is done in every warp
        if (it + 1 < ntiles) load_v(it + 1, (it + 1) & 1);   // over V_{it-1}
        if (it + 2 < ntiles) load_k(it + 2, it & 1);         // over K_it
        cp_async_commit();
        if (it + 1 < ntiles) {
            need_nxt = fwd6_need(wq0, key_tile_at(kr, it + 1) * BK, W, S, T);
            fwd6_qk<D>(nxt, qf, Ks + ((it + 1) & 1) * BK * LDS, need_nxt, lane);
        }
        if (need_cur)
            fwd6_softmax_pv<D>(o, m, l, cur, Vs + (it & 1) * BK * LDS, key_tile_at(kr, it) * BK, wq0,
                               need_cur, lane, W, S, T, sl2);
    };
    for (int it = 0; it < ntiles; it += 2) {
        step(it, sa, need_a, sb, need_b);
        if (it + 1 < ntiles) step(it + 1, sb, need_b, sa, need_a);
    }
    fwd_epilogue<D>(out, lse, Qs, o, m, l, b, h, T, NH, q0, warp, lane);
}

template<int D>
void attention_forward6(bf16* out, float* lse, const bf16* qkv, int B, int T, int NH, int W, int S) {
    const size_t smem = (size_t)(TC_BQ + 4 * TC_BK) * (D + 8) * sizeof(bf16);
    static bool configured = false;
    if (!configured) {
        cudaCheck(cudaFuncSetAttribute(attention_forward_kernel6<D>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
        configured = true;
    }
    dim3 grid(B * NH, ceil_div(T, TC_BQ));
    attention_forward_kernel6<D><<<grid, TC_THREADS, smem>>>(out, lse, qkv, B, T, NH, W, S);
    cudaCheckLaunch();
}
// ---- end of version 6

// ----------------------------------------------------------------------------
// version 7 (kernel, launcher: the block below; the tile functions are v6's fwd6_need / fwd6_qk /
// fwd6_softmax_pv, the epilogue v3's fwd_epilogue, the tile loads common.h's load_rows_async)
// v7: v4's loop (no software pipelining, 4 warps x 16 rows, 3 blocks per SM) with fewer instructions
// per mma. ncu on v4 (T = 16384, full): 9.3 instructions issued per mma, issue slots 51% busy, tensor
// pipe 33%, stalls mostly fixed-latency waits and short scoreboard at 3 warps per scheduler: the
// kernel is issue- and latency-bound, not shared-memory bound. v4's SASS for one unmasked tile holds
// ~680 instructions: ~200 of them address and bounds math for the 8 cp.async per thread, ~100 the
// range fix-ups of exp2f. v7: common.h's load_rows_async (fixed slots, one add per copy), v6's
// ex2.approx.ftz, lazy rescale, chunk skipping only on tiles that have a skipped chunk (predicated
// ldmatrix costs a WARPSYNC and an address recomputation each), one __syncthreads per tile.
// Predicted (written before measuring): 1.25x v4 on full causal and W = 1024, 1.2x on W = 256.

// @copy-begin attn-forward-v7
// forward v7, the fastest on mma.sync: v4's loop (4 warps x 16 query rows, 3 blocks per SM) with
// fewer instructions per mma: fixed-slot cp.async (load_rows_async), ex2.approx.ftz, lazy rescale,
// chunk skipping only on tiles with a skipped chunk, one __syncthreads per tile
template<int D>
__global__ void __launch_bounds__(TC_THREADS, fwd6_min_blocks<D>())
attention_forward_kernel7(bf16* out, float* lse, const bf16* qkv, int B, int T, int NH, int W, int S) {
    constexpr int BQ = TC_BQ, BK = TC_BK, NT = TC_THREADS, LDS = D + 8;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    bf16* Qs = reinterpret_cast<bf16*>(smem_raw);   // (BQ, LDS)
    bf16* Ks = Qs + BQ * LDS;                       // (2, BK, LDS)
    bf16* Vs = Ks + 2 * BK * LDS;                   // (2, BK, LDS)

    const int bh = blockIdx.x, b = bh / NH, h = bh % NH;
    const int qt = gridDim.y - 1 - blockIdx.y;      // longest tiles first
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
    const int q0 = qt * BQ, wq0 = q0 + warp * 16;
    const size_t C = (size_t)NH * D, C3 = 3 * C;
    const bf16* qbase = qkv + (size_t)b * T * C3 + h * D;
    const bf16* kbase = qbase + C;
    const bf16* vbase = qbase + 2 * C;
    const float sl2 = LOG2E / sqrtf((float)D);

    const int q_last = min(q0 + BQ, T) - 1;
    const KeyTileRange kr = key_tiles_for_queries(q0, q_last, W, S, BK);
    const int ntiles = key_tile_count(kr);
    auto load_kv = [&](int it, int buf) {
        const int k0 = key_tile_at(kr, it) * BK;
        load_rows_async<D, BK, LDS, NT>(Ks + buf * BK * LDS, kbase, C3, k0, T, tid);
        load_rows_async<D, BK, LDS, NT>(Vs + buf * BK * LDS, vbase, C3, k0, T, tid);
    };

    load_rows_async<D, BQ, LDS, NT>(Qs, qbase, C3, q0, T, tid);
    load_kv(0, 0);
    cp_async_commit();
    cp_async_wait<0>();
    __syncthreads();
    uint32_t qf[D / 16][4];
    load_q_frags<D>(qf, Qs, warp, lane);

    float o[D / 8][4];
#pragma unroll
    for (int n = 0; n < D / 8; n++) { o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.f; }
    float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};

    for (int it = 0; it < ntiles; it++) {
        if (it > 0) {
            cp_async_wait<0>();   // tile it has landed
            __syncthreads();      // ... for everyone, and tile it-1 is done in every warp
        }
        if (it + 1 < ntiles) {    // into the buffer of tile it-1
            load_kv(it + 1, (it + 1) & 1);
            cp_async_commit();
        }
        const int buf = it & 1, k0 = key_tile_at(kr, it) * BK;
        const unsigned need = fwd6_need(wq0, k0, W, S, T);
        float s[BK / 8][4];
        if (need == 0xFu) {       // every chunk: a copy with the chunk predicates folded away
            fwd6_qk<D>(s, qf, Ks + buf * BK * LDS, 0xFu, lane);
            fwd6_softmax_pv<D>(o, m, l, s, Vs + buf * BK * LDS, k0, wq0, 0xFu, lane, W, S, T, sl2);
        } else if (need) {        // band edges and sink tiles: predicated mma on the needed chunks
            fwd6_qk<D>(s, qf, Ks + buf * BK * LDS, need, lane);
            fwd6_softmax_pv<D>(o, m, l, s, Vs + buf * BK * LDS, k0, wq0, need, lane, W, S, T, sl2);
        }
    }
    fwd_epilogue<D>(out, lse, Qs, o, m, l, b, h, T, NH, q0, warp, lane);
}

template<int D>
void attention_forward7(bf16* out, float* lse, const bf16* qkv, int B, int T, int NH, int W, int S) {
    const size_t smem = (size_t)(TC_BQ + 4 * TC_BK) * (D + 8) * sizeof(bf16);
    static bool configured = false;
    if (!configured) {
        cudaCheck(cudaFuncSetAttribute(attention_forward_kernel7<D>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
        configured = true;
    }
    dim3 grid(B * NH, ceil_div(T, TC_BQ));
    attention_forward_kernel7<D><<<grid, TC_THREADS, smem>>>(out, lse, qkv, B, T, NH, W, S);
    cudaCheckLaunch();
}
// ---- end of version 7
// @copy-end attn-forward-v7

// ----------------------------------------------------------------------------
// version 8 (this whole region; uses common.h's wgmma helpers (attn-wgmma), block_any_allowed,
// block_fully_allowed, ex2_approx, pack_bf16x2, cp_async_commit / cp_async_wait, and the pattern's
// key-tile range)
// v8: v7's algorithm on Hopper's warpgroup MMA (wgmma, sm_90a) instead of mma.sync. A block is
// NWG warpgroups of 128 threads; warpgroup w owns 64 query rows. S = Q K^T is one chain of
// wgmma m64n64k16 with Q and K read straight from shared memory through matrix descriptors (no
// ldmatrix); O += P V is wgmma m64nDk16 with P in registers (the S accumulator layout is the A
// fragment layout, as with mma.sync) and V read from shared memory as an N-major ("transposed") B.
// Tiles are stored in the 128-byte-swizzled layout that wgmma expects (64-element column blocks,
// 16-byte chunk c of row r at chunk c ^ (r % 8)), filled by cp.async. Kept from v7: ex2.approx.ftz,
// lazy rescale, per-row edge masks, the sink + band key-tile range, a key tile skipped by a
// warpgroup whose 64 rows have no allowed pair in it.
// Predicted (written before measuring): one wgmma m64n64k16 does the work of 32 mma.sync with no
// ldmatrix and no per-mma issue slots, so the issue bound of v7 (9 instr / mma in v4) goes away and
// the exp / softmax work becomes the bound: full causal ~1.4x v7 (~350 TFLOP/s at T = 16384),
// W = 1024 ~1.3x, W = 256 ~1.2x (the prologue latency per block stays).
// Measured (H200): full 1.28-1.40x v7 (352 TFLOP/s at T = 16384), W = 1024 1.33-1.36x, W = 256
// 1.23-1.24x. Issuing the next tile's Q K^T before this tile's softmax (FA3's overlap) lost: two S
// register sets cost occupancy (notes.md, Round 3).

// @copy-begin attn-forward-softmax
// the key tile and the softmax steps of v8, which v9-v12 share (the programs copy this part only)
constexpr int FWD8_BK = 64;

// edge tiles only (the pair block is not wholly allowed): scores of disallowed pairs, and of rows
// past T, to -inf. s[4t + 2r + e] is row r0 + 8r, key k0 + 8t + 2tg + e.
__device__ __forceinline__ void fwd8_mask(float (&s)[32], int k0, int wq0, int r0, int tg, int W, int S, int T) {
    constexpr int BK = FWD8_BK;
    if (!block_fully_allowed(wq0, 64, k0, BK, W, S, T)) {
        const int kb = k0 + 2 * tg, sk = S - kb;
#pragma unroll
        for (int r = 0; r < 2; r++) {
            const int row = r0 + 8 * r;
            const int hi = (row < T) ? row - kb : -1 - BK;
            const int lo = (W > 0) ? row - W + 1 - kb : -BK;
#pragma unroll
            for (int t = 0; t < BK / 8; t++)
#pragma unroll
                for (int e = 0; e < 2; e++) {
                    const int kk = t * 8 + e;
                    if (!(kk <= hi && (kk >= lo || kk < sk))) s[4 * t + 2 * r + e] = -INFINITY;
                }
        }
    }
}
// this thread's part of the row maxima (rows r0, r0 + 8; the row's 4 threads still to be combined)
__device__ __forceinline__ void fwd8_thread_max(const float (&s)[32], float (&mx)[2]) {
    mx[0] = mx[1] = -INFINITY;
#pragma unroll
    for (int t = 0; t < FWD8_BK / 8; t++) {
        mx[0] = fmaxf(mx[0], fmaxf(s[4 * t], s[4 * t + 1]));
        mx[1] = fmaxf(mx[1], fmaxf(s[4 * t + 2], s[4 * t + 3]));
    }
}

// the softmax step of a tile whose scores are masked already: the running max, the rescale of o
// and l when it grows by more than 2^8, and P as bf16 A fragments (the general path's version 4
// masks with its own rule and runs this)
template<int D>
__device__ __forceinline__ void fwd8_online_softmax(float (&s)[32], float (&o)[D / 2], float (&m)[2], float (&l)[2],
                                                    uint32_t (&pa)[FWD8_BK / 16][4], float sl2) {
    constexpr int BK = FWD8_BK;
    float mx[2];
    fwd8_thread_max(s, mx);
    float mnew[2];
    bool grow = false;
#pragma unroll
    for (int r = 0; r < 2; r++) {
        mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
        mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
        mnew[r] = fmaxf(m[r], mx[r] * sl2);
        grow |= (mnew[r] - m[r] > 8.f);   // -inf -> finite: inf > 8; -inf -> -inf: NaN, false
    }
    if (__any_sync(0xffffffffu, grow)) {
#pragma unroll
        for (int r = 0; r < 2; r++) {
            const float mu = (mnew[r] == -INFINITY) ? 0.f : mnew[r];
            const float alpha = ex2_approx(m[r] - mu);
            m[r] = mnew[r];
            l[r] *= alpha;
#pragma unroll
            for (int n = 0; n < D / 8; n++) { o[4 * n + 2 * r] *= alpha; o[4 * n + 2 * r + 1] *= alpha; }
        }
    }
    float mu[2];
#pragma unroll
    for (int r = 0; r < 2; r++) mu[r] = (m[r] == -INFINITY) ? 0.f : m[r];
#pragma unroll
    for (int t = 0; t < BK / 8; t++) {   // key chunk kc = accumulator n-tiles 2kc, 2kc + 1
        float p[4];
#pragma unroll
        for (int e = 0; e < 4; e++) {
            p[e] = ex2_approx(fmaf(s[4 * t + e], sl2, -mu[e / 2]));
            l[e / 2] += p[e];
        }
        pa[t / 2][2 * (t % 2)] = pack_bf16x2(p[0], p[1]);
        pa[t / 2][2 * (t % 2) + 1] = pack_bf16x2(p[2], p[3]);
    }
}

// mask (edge tiles only), row max, lazy rescale (only when some row's max grew by > 8 in log2
// units), P = 2^(s sl2 - m) as bf16 A fragments, row sums. s[4t + 2r + e] is row r0 + 8r, key
// k0 + 8t + 2tg + e. No wgmma may be in flight (o and the P fragments are rewritten).
template<int D>
__device__ __forceinline__ void fwd8_softmax(float (&s)[32], float (&o)[D / 2], float (&m)[2], float (&l)[2],
                                             uint32_t (&pa)[FWD8_BK / 16][4], int k0, int wq0, int r0, int tg,
                                             int W, int S, int T, float sl2) {
    fwd8_mask(s, k0, wq0, r0, tg, W, S, T);
    fwd8_online_softmax<D>(s, o, m, l, pa, sl2);
}

// @copy-end attn-forward-softmax

// NWG: warpgroups per block (v8: 2; v9, below: 1). Blocks per SM: v8 at D = 64 fits 2 (114
// registers); v9's 64-row blocks are capped at 96 registers so that 5 fit (no spills at D = 64).
template<int NWG> __host__ __device__ constexpr int fwd8_threads() { return 128 * NWG; }
template<int D, int NWG> __host__ __device__ constexpr int fwd8_min_blocks() {
    return NWG == 2 ? (D == 64 ? 2 : 1) : (D == 64 ? 5 : 2);
}
template<int D, int NWG> __host__ __device__ constexpr size_t fwd8_smem() {   // + 1024: base alignment
    return 1024 + (size_t)(64 * NWG + 4 * FWD8_BK) * D * sizeof(bf16);
}

template<int D, int NWG>
__global__ void __launch_bounds__(fwd8_threads<NWG>(), (fwd8_min_blocks<D, NWG>()))
attention_forward_kernel8(bf16* out, float* lse, const bf16* qkv, int B, int T, int NH, int W, int S) {
#ifdef HAS_WGMMA
    constexpr int BQ = 64 * NWG, BK = FWD8_BK, NT = fwd8_threads<NWG>(), CH = D / 8;
    constexpr uint32_t QBYTES = BQ * D * 2, KVBYTES = BK * D * 2;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    // tiles need 1024-byte alignment (the swizzle pattern repeats every 8 rows of 128 B)
    const uint32_t raw = (uint32_t)__cvta_generic_to_shared(smem_raw);
    const uint32_t sbase = (raw + 1023u) & ~1023u;
    unsigned char* smem = smem_raw + (sbase - raw);
    const uint32_t Qs = sbase;                         // (BQ rows) swizzled
    const uint32_t Ks = Qs + QBYTES;                   // 2 buffers of (BK rows)
    const uint32_t Vs = Ks + 2 * KVBYTES;              // 2 buffers of (BK rows)

    const int bh = blockIdx.x, b = bh / NH, h = bh % NH;
    const int qt = gridDim.y - 1 - blockIdx.y;         // longest tiles first
    const int tid = threadIdx.x, wg = tid / 128, wt = tid % 128;
    const int warp = wt / 32, lane = tid % 32, g = lane / 4, tg = lane % 4;
    const int q0 = qt * BQ, wq0 = q0 + wg * 64;        // this warpgroup's 64 rows
    const int r0 = wq0 + warp * 16 + g;                // this thread's rows: r0, r0 + 8
    const size_t C = (size_t)NH * D, C3 = 3 * C;
    const bf16* qbase = qkv + (size_t)b * T * C3 + h * D;
    const bf16* kbase = qbase + C;
    const bf16* vbase = qbase + 2 * C;
    const float sl2 = LOG2E / sqrtf((float)D);

    const int q_last = min(q0 + BQ, T) - 1;
    const KeyTileRange kr = key_tiles_for_queries(q0, q_last, W, S, BK);
    const int ntiles = key_tile_count(kr);
    auto load_k = [&](int it, int buf) {
        wg_load_rows<D, BK, NT>(Ks + buf * KVBYTES, kbase, C3, key_tile_at(kr, it) * BK, T, tid);
    };
    auto load_v = [&](int it, int buf) {
        wg_load_rows<D, BK, NT>(Vs + buf * KVBYTES, vbase, C3, key_tile_at(kr, it) * BK, T, tid);
    };
    auto need = [&](int it) { return block_any_allowed(wq0, 64, key_tile_at(kr, it) * BK, BK, W, S, T); };
    auto sync_tiles = [&]() {
        cp_async_wait<0>();                                              // my copies landed
        asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");   // ... visible to wgmma
        __syncthreads();                                                 // ... everyone's
    };

    // descriptors: Q of this warpgroup (A, K-major), K (B, K-major), V (B, N-major); k-step kk of
    // Q / K starts (kk / 4) column blocks and (kk % 4) * 32 bytes in; k-step kc of V 16 rows down
    const uint64_t dq0 = wg_desc(Qs + wg * 64 * 128, 16, 1024);
    const uint64_t dk0 = wg_desc(Ks, 16, 1024);
    const uint64_t dv0 = wg_desc(Vs, BK * 128, 1024);
    auto dk = [&](int buf) { return dk0 + (uint32_t)(buf * KVBYTES >> 4); };
    auto dv = [&](int buf) { return dv0 + (uint32_t)(buf * KVBYTES >> 4); };

    float o[D / 2];
#pragma unroll
    for (int i = 0; i < D / 2; i++) o[i] = 0.f;
    float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};
    uint32_t pa[BK / 16][4];

    wg_load_rows<D, BQ, NT>(Qs, qbase, C3, q0, T, tid);
    load_k(0, 0);
    load_v(0, 0);
    cp_async_commit();
    for (int it = 0; it < ntiles; it++) {
        sync_tiles();                  // tile it (and Q) landed; every warpgroup is done with tile it-1
        if (it + 1 < ntiles) {         // into the buffers of tile it-1
            load_k(it + 1, (it + 1) & 1);
            load_v(it + 1, (it + 1) & 1);
            cp_async_commit();
        }
        if (!need(it)) continue;       // warpgroup-uniform
        float s[32];
        wg_issue_abt<D, BQ, BK>(s, dq0, dk(it & 1));   // S = Q K^T
        wg_wait<0>();
        wg_fence_regs(s);
        fwd8_softmax<D>(s, o, m, l, pa, key_tile_at(kr, it) * BK, wq0, r0, tg, W, S, T, sl2);
        wg_issue_pb<D>(o, pa, dv(it & 1));               // O += P V
        wg_wait<0>();
    }
    wg_fence_regs(o);

    // epilogue: normalise, stage bf16 rows in this warpgroup's own Q rows (swizzled: no bank
    // conflicts; only this warpgroup's wgmma read them, and those have completed), 16-byte stores
    float inv[2];
#pragma unroll
    for (int r = 0; r < 2; r++) {
        l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
        l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
        inv[r] = (l[r] > 0.f) ? 1.f / l[r] : 0.f;
    }
    const int lrow = wg * 64 + warp * 16 + g;   // row within the block
#pragma unroll
    for (int n = 0; n < D / 8; n++)
#pragma unroll
        for (int r = 0; r < 2; r++)
            *reinterpret_cast<uint32_t*>(smem + wg_swz<BQ>(lrow + 8 * r, n) + 4 * tg) =
                pack_bf16x2(o[4 * n + 2 * r] * inv[r], o[4 * n + 2 * r + 1] * inv[r]);
    if (tg == 0) {
#pragma unroll
        for (int r = 0; r < 2; r++) {
            const int row = r0 + 8 * r;
            if (row < T) lse[(size_t)(b * NH + h) * T + row] = (m[r] + log2f(l[r])) * LN2;
        }
    }
    if (wg == 0) asm volatile("bar.sync 1, 128;\n" ::: "memory");      // this warpgroup's 128 threads
    else         asm volatile("bar.sync 2, 128;\n" ::: "memory");
#pragma unroll
    for (int p = 0; p < 64 * CH / 128; p++) {
        const int x = wt + p * 128, rr = x / CH, cc = x % CH, t = wq0 + rr;
        if (t < T)
            *reinterpret_cast<uint4*>(out + ((size_t)(b * T + t) * NH + h) * D + cc * 8) =
                *reinterpret_cast<const uint4*>(smem + wg_swz<BQ>(wg * 64 + rr, cc));
    }
#endif
}

template<int D, int NWG>
void attention_forward8_launch(bf16* out, float* lse, const bf16* qkv, int B, int T, int NH, int W, int S) {
    const size_t smem = fwd8_smem<D, NWG>();
    static bool configured = false;
    if (!configured) {
        cudaCheck(cudaFuncSetAttribute(attention_forward_kernel8<D, NWG>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
        configured = true;
    }
    dim3 grid(B * NH, ceil_div(T, 64 * NWG));
    attention_forward_kernel8<D, NWG><<<grid, fwd8_threads<NWG>(), smem>>>(out, lse, qkv, B, T, NH, W, S);
    cudaCheckLaunch();
}
template<int D>
void attention_forward8(bf16* out, float* lse, const bf16* qkv, int B, int T, int NH, int W, int S) {
    attention_forward8_launch<D, 2>(out, lse, qkv, B, T, NH, W, S);
}
// version 9: v8 with one warpgroup (64 query rows) per block, 5 blocks per SM at D = 64.
// Predicted (after ncu showed v8 on W = 256 issuing on 55% of cycles with 1.07 of 3.8 warps
// eligible, notes.md Round 5): v8's two warpgroups meet at a barrier every key tile, so their
// products and softmaxes run in step and leave the tensor cores idle together; independent
// 64-row blocks drift apart, and at 96 registers 5 of them (20 warps) fit instead of 2 x 8 = 16
// warps. Each block loads its own K / V tiles (more L2 traffic, ~6 tiles per 64 rows against ~7 per
// 128 at W = 256). Expected 1.1-1.2x on windows, ~1x on long full causal rows.
// Measured (H200, results/h200_forward_v9.log, v9 / v8 in one run): W = 256 1.12-1.14x, W = 1024
// 1.04-1.09x, full causal 1.03x (T = 1024), 1.01x (4096), 0.95x (16384: v8's two warpgroups share
// each K / V tile, and long rows have no short-run cost to win back).
template<int D>
void attention_forward9(bf16* out, float* lse, const bf16* qkv, int B, int T, int NH, int W, int S) {
    attention_forward8_launch<D, 1>(out, lse, qkv, B, T, NH, W, S);
}
// where v9 beat v8 (H200, D = 64): windows of 256 and 1024 keys at every T, full rows up to T = 4096
// (windows of 1025-4096 keys are taken as between those); on full causal rows of 16384 v8's shared
// K / V tiles won (0.95x)
inline bool forward9_pays(int T, int W) {
    const int keys = (W > 0 && W < T) ? W : T;   // the longest run of keys a query row sees
    return keys <= 4096;
}
// ---- end of versions 8 and 9

// ----------------------------------------------------------------------------
// versions 10 and 11 (the block below: the kernel and its launcher; attention_forward10 / 11 after it
// pick the variant; uses v8's fwd8_softmax and FWD8_BK, common.h's wgmma and TMA helpers)
// v10: v9 (one warpgroup, 64 query rows per block) with Q, K and V brought in by the tensor memory
// accelerator: one thread issues one copy per 64 x 64 box (the copy engine writes the 128-byte
// swizzle itself and zero-fills rows past T), and the warps wait on an mbarrier per K / V buffer.
// Every key tile of the block's range has an allowed pair for some row (the range is the union of
// the rows' bands and the sinks below it), so v9's per-tile "any allowed pair" test is gone too.
// Predicted (written before measuring): ncu on v9 (W = 1024, T = 16384) counts ~430 instructions
// per warp per key tile with the issue slots 62% busy; the cp.async addressing (IMAD / LEA / ISETP /
// LDGSTS) is ~80-100 of them, so 1.1-1.2x v9 on windows, ~1.1x on full rows.
// Measured (H200, results/h200_forward_v10.log): 1.17-1.27x v9 in all nine canonical cases (ncu,
// W = 1024: 311 instructions per warp per tile against 430). The grid matters: with v9's order
// (consecutive blocks = different heads) v10 was 0.95-0.99x v9 at T = 1024; with a head's query
// tiles next to each other, neighbours find their K / V tiles in the L2.
// v11: v10 with a 16-key sink tile when the sinks fit one (S <= 16) and lie below the band: the
// sink keys' Q K^T is wgmma n16 instead of n64, their P V one k-step instead of four, and their
// softmax covers 8 scores per thread instead of 32. At W = 256 a 64-row block visits 5 band tiles
// and the sink tile, so predicted ~1.15x v10 there, ~1.04x at W = 1024, nothing on full rows.
// Measured: W = 256 1.04-1.10x v10, W = 1024 1.00-1.03x, full rows level; 1.21-1.32x v9 overall.

// @copy-begin attn-forward-v10
// forward v10 / v11 (NARROW_SINK): one warpgroup of 64 query rows per block on wgmma (v9); Q, K and
// V brought in by the tensor memory accelerator (one thread, one copy per 64 x 64 box, an mbarrier
// per K / V buffer), a head's query tiles side by side in the grid; v11: a 16-key sink tile when
// the sinks fit one (S <= 16) and lie below the band
constexpr int FWD10_SINK_KEYS = 16;
static_assert(FWD10_SINK_KEYS == 16, "the narrow sink tile is one wgmma n16 and one k16 step of P V");
template<int D> __host__ __device__ constexpr int fwd10_min_blocks() { return D == 64 ? 5 : 2; }
template<int D> __host__ __device__ constexpr size_t fwd10_smem() {   // + 1024: base alignment
    return 1024 + (size_t)(64 + 4 * FWD8_BK) * D * sizeof(bf16);
}

// The 16-key sink tile (v11 on): keys 0..15 lie below every row's band, so key j is allowed iff
// j < S. It is the first tile a row sees: m = -inf, l = 0, o = 0 before it, nothing to rescale.
// s8[4t + 2r + e] is row r0 + 8r, key 8t + 2tg + e; ps: P as the A fragment of one k16 step.
template<int D, int BQ, int BK>
__device__ __forceinline__ void fwd10_sink_tile(float (&s8)[8], uint32_t (&ps)[4], float (&m)[2], float (&l)[2],
                                                uint64_t dq, uint64_t dk, int tg, int S, float sl2) {
    wg_fence();
#pragma unroll
    for (int kk = 0; kk < D / 16; kk++)
        wgmma_m64n16_ss(s8, dq + ((uint32_t)((kk / 4) * BQ * 128 + (kk % 4) * 32) >> 4),
                        dk + ((uint32_t)((kk / 4) * BK * 128 + (kk % 4) * 32) >> 4), kk > 0);
    wg_commit();
    wg_wait<0>();
    wg_fence_regs(s8);
    float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int i = 0; i < 8; i++) {
        if (8 * (i / 4) + 2 * tg + (i % 2) >= S) s8[i] = -INFINITY;
        mx[(i / 2) % 2] = fmaxf(mx[(i / 2) % 2], s8[i]);
    }
#pragma unroll
    for (int r = 0; r < 2; r++) {
        mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
        mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
        m[r] = mx[r] * sl2;   // key 0 is a sink: finite
    }
#pragma unroll
    for (int i = 0; i < 8; i++) {
        s8[i] = ex2_approx(fmaf(s8[i], sl2, -m[(i / 2) % 2]));
        l[(i / 2) % 2] += s8[i];
    }
    // A fragment of m64 x k16: (row g, keys 2tg..), (row g+8, 2tg..), (row g, 8+2tg..), (row g+8, 8+2tg..)
#pragma unroll
    for (int j = 0; j < 4; j++) ps[j] = pack_bf16x2(s8[2 * j], s8[2 * j + 1]);
}

// epilogue of v10 on (as v9): normalise, stage the bf16 rows in Q's swizzled tile (its wgmma are
// done), 16-byte stores; lse in natural log
template<int D>
__device__ __forceinline__ void fwd10_epilogue(bf16* out, float* lse, unsigned char* smem, float (&o)[D / 2],
                                               float (&m)[2], float (&l)[2], int b, int h, int q0, int r0,
                                               int warp, int g, int tg, int tid, int T, int NH) {
    constexpr int BQ = 64, CH = D / 8;
    float inv[2];
#pragma unroll
    for (int r = 0; r < 2; r++) {
        l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
        l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
        inv[r] = (l[r] > 0.f) ? 1.f / l[r] : 0.f;
    }
    const int lrow = warp * 16 + g;
#pragma unroll
    for (int n = 0; n < D / 8; n++)
#pragma unroll
        for (int r = 0; r < 2; r++)
            *reinterpret_cast<uint32_t*>(smem + wg_swz<BQ>(lrow + 8 * r, n) + 4 * tg) =
                pack_bf16x2(o[4 * n + 2 * r] * inv[r], o[4 * n + 2 * r + 1] * inv[r]);
    if (tg == 0) {
#pragma unroll
        for (int r = 0; r < 2; r++) {
            const int row = r0 + 8 * r;
            if (row < T) lse[(size_t)(b * NH + h) * T + row] = (m[r] + log2f(l[r])) * LN2;
        }
    }
    __syncthreads();
#pragma unroll
    for (int p = 0; p < 64 * CH / 128; p++) {
        const int x = tid + p * 128, rr = x / CH, cc = x % CH, t = q0 + rr;
        if (t < T)
            *reinterpret_cast<uint4*>(out + ((size_t)(b * T + t) * NH + h) * D + cc * 8) =
                *reinterpret_cast<const uint4*>(smem + wg_swz<BQ>(rr, cc));
    }
}

template<int D, bool NARROW_SINK>
__global__ void __launch_bounds__(128, fwd10_min_blocks<D>())
attention_forward_kernel10(bf16* out, float* lse, const __grid_constant__ CUtensorMap qkv_map,
                           int B, int T, int NH, int W, int S) {
#ifdef HAS_WGMMA
    constexpr int BQ = 64, BK = FWD8_BK, CB = D / 64;   // CB: 64-column boxes per row
    constexpr uint32_t QBYTES = BQ * D * 2, KVBYTES = BK * D * 2;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    __shared__ __align__(8) uint64_t tile_full[2];     // one mbarrier per K / V buffer
    const uint32_t raw = (uint32_t)__cvta_generic_to_shared(smem_raw);
    const uint32_t sbase = (raw + 1023u) & ~1023u;     // the swizzle repeats every 1024 bytes
    unsigned char* smem = smem_raw + (sbase - raw);
    const uint32_t Qs = sbase;                         // (BQ rows) swizzled
    const uint32_t Ks = Qs + QBYTES;                   // 2 buffers of (BK rows)
    const uint32_t Vs = Ks + 2 * KVBYTES;              // 2 buffers of (BK rows)
    const uint32_t bar0 = (uint32_t)__cvta_generic_to_shared(&tile_full[0]);

    const int h = blockIdx.y, b = blockIdx.z;
    const int qt = gridDim.x - 1 - blockIdx.x;         // longest tiles first
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane / 4, tg = lane % 4;
    const int q0 = qt * BQ;
    const int r0 = q0 + warp * 16 + g;                 // this thread's rows: r0, r0 + 8
    const int C = NH * D;
    const float sl2 = LOG2E / sqrtf((float)D);

    const int q_last = min(q0 + BQ, T) - 1;
    const KeyTileRange kr = key_tiles_for_queries(q0, q_last, W, S, BK);
    const int ntiles = key_tile_count(kr);
    // tile 0 is the sink tile and all sinks sit in its first 16 keys: the narrow path
    const bool narrow = NARROW_SINK && kr.n_sink == 1 && S <= FWD10_SINK_KEYS;
    auto issue_kv = [&](int it, int buf) {   // one thread
        const int k0 = key_tile_at(kr, it) * BK;
#pragma unroll
        for (int cb = 0; cb < CB; cb++) {
            tma_load_box(Ks + buf * KVBYTES + cb * BK * 128, &qkv_map, C + h * D + cb * 64, k0, b, bar0 + 8 * buf);
            tma_load_box(Vs + buf * KVBYTES + cb * BK * 128, &qkv_map, 2 * C + h * D + cb * 64, k0, b, bar0 + 8 * buf);
        }
    };
    if (tid == 0) {
        mbar_init(bar0, 1);
        mbar_init(bar0 + 8, 1);
        mbar_init_fence();
        mbar_arrive_expect_bytes(bar0, QBYTES + 2 * KVBYTES);
#pragma unroll
        for (int cb = 0; cb < CB; cb++) tma_load_box(Qs + cb * BQ * 128, &qkv_map, h * D + cb * 64, q0, b, bar0);
        issue_kv(0, 0);
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

    for (int it = 0; it < ntiles; it++) {
        if (it > 0) __syncthreads();   // every warp is done with tile it-1, whose buffers tile it+1 takes
        if (tid == 0 && it + 1 < ntiles) {
            mbar_arrive_expect_bytes(bar0 + 8 * ((it + 1) & 1), 2 * KVBYTES);
            issue_kv(it + 1, (it + 1) & 1);
        }
        mbar_wait(bar0 + 8 * (it & 1), (it >> 1) & 1);   // tile it (and, for it = 0, Q) landed
        if (narrow && it == 0) {
            float s8[8];
            uint32_t ps[4];
            fwd10_sink_tile<D, BQ, BK>(s8, ps, m, l, dq0, dk(0), tg, S, sl2);
            wg_fence_regs(o);
            wg_fence();
            wgmma_m64nD_rs<D>(o, ps, dv(0));
            wg_commit();
            wg_wait<0>();
            continue;
        }
        float s[32];
        wg_issue_abt<D, BQ, BK>(s, dq0, dk(it & 1));   // S = Q K^T
        wg_wait<0>();
        wg_fence_regs(s);
        fwd8_softmax<D>(s, o, m, l, pa, key_tile_at(kr, it) * BK, q0, r0, tg, W, S, T, sl2);
        wg_issue_pb<D>(o, pa, dv(it & 1));               // O += P V
        wg_wait<0>();
    }
    wg_fence_regs(o);

    fwd10_epilogue<D>(out, lse, smem, o, m, l, b, h, q0, r0, warp, g, tg, tid, T, NH);
#endif
}

template<int D, bool NARROW_SINK>
void attention_forward10_launch(bf16* out, float* lse, const bf16* qkv, int B, int T, int NH, int W, int S) {
    const size_t smem = fwd10_smem<D>();
    static bool configured = false;
    if (!configured) {
        cudaCheck(cudaFuncSetAttribute(attention_forward_kernel10<D, NARROW_SINK>,
                                       cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
        configured = true;
    }
    const CUtensorMap map = rows_tensor_map(qkv, B, T, 3 * NH * D, 64);
    dim3 grid(ceil_div(T, 64), NH, B);   // a head's query tiles side by side: they share K / V in the L2
    attention_forward_kernel10<D, NARROW_SINK><<<grid, 128, smem>>>(out, lse, map, B, T, NH, W, S);
    cudaCheckLaunch();
}
// @copy-end attn-forward-v10
template<int D>
void attention_forward10(bf16* out, float* lse, const bf16* qkv, int B, int T, int NH, int W, int S) {
    attention_forward10_launch<D, false>(out, lse, qkv, B, T, NH, W, S);
}
// @copy-begin attn-forward-v11
// v11, the programs' forward on sm_90a
template<int D>
void attention_forward11(bf16* out, float* lse, const bf16* qkv, int B, int T, int NH, int W, int S) {
    attention_forward10_launch<D, true>(out, lse, qkv, B, T, NH, W, S);
}
// @copy-end attn-forward-v11
// ---- end of versions 10 and 11

// v12: v11 with the tensor cores kept busy during the softmax. Each iteration issues tile it+1's
// Q K^T and then tile it's P V back to back, waits for the Q K^T only, and runs tile it+1's
// softmax while P V still runs; the P fragments are packed (and o rescaled, when the max grew)
// after P V has finished with them. K is loaded two tiles ahead, V one (separate mbarriers), since
// K(it+1) is needed a P V earlier than V(it+1). Same registers as v11 (S, O, P fragments), so 5
// blocks per SM would fit if the register count allowed it.
// Predicted (written before measuring): ncu on v11 shows the wgmma waits as the largest stall
// (~14% of samples, the two WARPGROUP.DEPBAR) and 1.3 eligible warps per scheduler; hiding the
// P V wait under the softmax: ~1.15x v11 on W = 1024 and full rows, ~1.1x on W = 256.
// Measured: slower. S, O and both P sets live at once need 106 registers: at 5 blocks per SM (96)
// it spills and runs 0.72-0.82x v11; at 4 blocks (16 warps) 0.90-0.95x v11. With 5 independent
// warpgroups per SM the tensor cores already have another warpgroup's products to run during a
// softmax; the overlap inside one warpgroup does not pay for the warps it costs. Kept as a record.

// v12's softmax before its P V may be packed: mask, row max, the rescale factor alpha (lazy: only
// when some row's max grew by > 8 in log2 units; grow tells the caller to rescale o once the
// in-flight P V is done), P = 2^(s sl2 - m) in place, row sums. Indexing as fwd8_softmax.
template<int D>
__device__ __forceinline__ void fwd12_softmax(float (&s)[32], float (&m)[2], float (&l)[2], float (&alpha)[2],
                                              bool& grow, int k0, int q0, int r0, int tg, int W, int S, int T,
                                              float sl2) {
    fwd8_mask(s, k0, q0, r0, tg, W, S, T);
    float mx[2];
    fwd8_thread_max(s, mx);
    float mnew[2];
    bool g = false;
#pragma unroll
    for (int r = 0; r < 2; r++) {
        mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
        mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
        mnew[r] = fmaxf(m[r], mx[r] * sl2);
        g |= (mnew[r] - m[r] > 8.f);   // -inf -> finite: inf > 8; -inf -> -inf: NaN, false
    }
    grow = __any_sync(0xffffffffu, g);
#pragma unroll
    for (int r = 0; r < 2; r++) {
        alpha[r] = 1.f;
        if (grow) {
            const float mu = (mnew[r] == -INFINITY) ? 0.f : mnew[r];
            alpha[r] = ex2_approx(m[r] - mu);
            m[r] = mnew[r];
            l[r] *= alpha[r];
        }
    }
    float mu[2];
#pragma unroll
    for (int r = 0; r < 2; r++) mu[r] = (m[r] == -INFINITY) ? 0.f : m[r];
#pragma unroll
    for (int i = 0; i < 32; i++) {
        s[i] = ex2_approx(fmaf(s[i], sl2, -mu[(i / 2) % 2]));
        l[(i / 2) % 2] += s[i];
    }
}
// P (in s) as bf16 A fragments: key chunk t of 8 is k-step t / 2, registers 2 (t % 2) and +1
__device__ __forceinline__ void fwd12_pack(uint32_t (&pa)[FWD8_BK / 16][4], const float (&s)[32]) {
#pragma unroll
    for (int t = 0; t < FWD8_BK / 8; t++) {
        pa[t / 2][2 * (t % 2)] = pack_bf16x2(s[4 * t], s[4 * t + 1]);
        pa[t / 2][2 * (t % 2) + 1] = pack_bf16x2(s[4 * t + 2], s[4 * t + 3]);
    }
}

template<int D>
__global__ void __launch_bounds__(128, D == 64 ? 4 : 2)
attention_forward_kernel12(bf16* out, float* lse, const __grid_constant__ CUtensorMap qkv_map,
                           int B, int T, int NH, int W, int S) {
#ifdef HAS_WGMMA
    constexpr int BQ = 64, BK = FWD8_BK, CB = D / 64;   // CB: 64-column boxes per row
    constexpr uint32_t QBYTES = BQ * D * 2, KBYTES = BK * D * 2;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    __shared__ __align__(8) uint64_t tile_full[4];     // mbarriers: K buffers 0, 1, V buffers 0, 1
    const uint32_t raw = (uint32_t)__cvta_generic_to_shared(smem_raw);
    const uint32_t sbase = (raw + 1023u) & ~1023u;     // the swizzle repeats every 1024 bytes
    unsigned char* smem = smem_raw + (sbase - raw);
    const uint32_t Qs = sbase;                         // (BQ rows) swizzled
    const uint32_t Ks = Qs + QBYTES;                   // 2 buffers of (BK rows)
    const uint32_t Vs = Ks + 2 * KBYTES;               // 2 buffers of (BK rows)
    const uint32_t kbar = (uint32_t)__cvta_generic_to_shared(&tile_full[0]), vbar = kbar + 16;

    const int h = blockIdx.y, b = blockIdx.z;
    const int qt = gridDim.x - 1 - blockIdx.x;         // longest tiles first
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane / 4, tg = lane % 4;
    const int q0 = qt * BQ;
    const int r0 = q0 + warp * 16 + g;                 // this thread's rows: r0, r0 + 8
    const int C = NH * D;
    const float sl2 = LOG2E / sqrtf((float)D);

    const int q_last = min(q0 + BQ, T) - 1;
    const KeyTileRange kr = key_tiles_for_queries(q0, q_last, W, S, BK);
    const int ntiles = key_tile_count(kr);
    const bool narrow = kr.n_sink == 1 && S <= FWD10_SINK_KEYS;   // as v11
    // tile j: K in buffer j % 2 behind mbarrier kbar + 8 (j % 2), its (j / 2)-th phase; V likewise
    auto issue_k = [&](int j, uint32_t extra_bytes) {   // one thread; extra_bytes: Q's, with K(0)
        const uint32_t bar = kbar + 8 * (j & 1);
        mbar_arrive_expect_bytes(bar, KBYTES + extra_bytes);
#pragma unroll
        for (int cb = 0; cb < CB; cb++)
            tma_load_box(Ks + (j & 1) * KBYTES + cb * BK * 128, &qkv_map, C + h * D + cb * 64, key_tile_at(kr, j) * BK, b, bar);
    };
    auto issue_v = [&](int j) {   // one thread
        const uint32_t bar = vbar + 8 * (j & 1);
        mbar_arrive_expect_bytes(bar, KBYTES);
#pragma unroll
        for (int cb = 0; cb < CB; cb++)
            tma_load_box(Vs + (j & 1) * KBYTES + cb * BK * 128, &qkv_map, 2 * C + h * D + cb * 64, key_tile_at(kr, j) * BK, b, bar);
    };
    auto wait_k = [&](int j) { mbar_wait(kbar + 8 * (j & 1), (j >> 1) & 1); };
    auto wait_v = [&](int j) { mbar_wait(vbar + 8 * (j & 1), (j >> 1) & 1); };
    if (tid == 0) {
        for (int i = 0; i < 4; i++) mbar_init(kbar + 8 * i, 1);
        mbar_init_fence();
#pragma unroll
        for (int cb = 0; cb < CB; cb++) tma_load_box(Qs + cb * BQ * 128, &qkv_map, h * D + cb * 64, q0, b, kbar);
        issue_k(0, QBYTES);
        issue_v(0);
        if (ntiles > 1) issue_k(1, 0);
    }
    __syncthreads();   // the barriers are initialised before anyone waits on them

    const uint64_t dq0 = wg_desc(Qs, 16, 1024);
    const uint64_t dk0 = wg_desc(Ks, 16, 1024);
    const uint64_t dv0 = wg_desc(Vs, BK * 128, 1024);
    auto dk = [&](int buf) { return dk0 + (uint32_t)(buf * KBYTES >> 4); };
    auto dv = [&](int buf) { return dv0 + (uint32_t)(buf * KBYTES >> 4); };

    float o[D / 2];
#pragma unroll
    for (int i = 0; i < D / 2; i++) o[i] = 0.f;
    float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};
    float s[32];
    uint32_t pa[BK / 16][4];

    // tile 0's scores and P (o = 0: nothing to rescale)
    wait_k(0);
    if (narrow) {
        float s8[8];
        fwd10_sink_tile<D, BQ, BK>(s8, pa[0], m, l, dq0, dk(0), tg, S, sl2);
    } else {
        wg_issue_abt<D, BQ, BK>(s, dq0, dk(0));
        wg_wait<0>();
        wg_fence_regs(s);
        float alpha[2];
        bool grow;
        fwd12_softmax<D>(s, m, l, alpha, grow, key_tile_at(kr, 0) * BK, q0, r0, tg, W, S, T, sl2);
        fwd12_pack(pa, s);
    }
    __syncthreads();                                 // every warp's Q K(0) is done: K buffer 0 is free
    if (tid == 0 && ntiles > 2) issue_k(2, 0);

    for (int it = 0; it + 1 < ntiles; it++) {
        // here: pa = P(it); o holds tiles < it; K(it+1), K(it+2) and V(it) are on their way
        wait_k(it + 1);
        wg_issue_abt<D, BQ, BK>(s, dq0, dk((it + 1) & 1));   // S(it+1) = Q K(it+1)^T
        wait_v(it);
        if (narrow && it == 0) {                       // the sink tile's P V: one k-step
            wg_fence_regs(o);
            wg_fence();
            wgmma_m64nD_rs<D>(o, pa[0], dv(0));
            wg_commit();
        } else {
            wg_issue_pb<D>(o, pa, dv(it & 1));         // O += P(it) V(it)
        }
        wg_wait<1>();                                  // S(it+1) is ready; P V(it) may still run
        wg_fence_regs(s);
        __syncthreads();   // every warp is past Q K(it+1) and P V(it-1): K buffer (it+1) % 2 and V buffer (it+1) % 2 are free
        if (tid == 0) {
            if (it + 3 < ntiles) issue_k(it + 3, 0);
            issue_v(it + 1);
        }
        float alpha[2];
        bool grow;
        fwd12_softmax<D>(s, m, l, alpha, grow, key_tile_at(kr, it + 1) * BK, q0, r0, tg, W, S, T, sl2);
        wg_wait<0>();                                  // P V(it) is done with pa and o
        wg_fence_regs(o);
        if (grow) {
#pragma unroll
            for (int n = 0; n < D / 8; n++)
#pragma unroll
                for (int r = 0; r < 2; r++) { o[4 * n + 2 * r] *= alpha[r]; o[4 * n + 2 * r + 1] *= alpha[r]; }
        }
        fwd12_pack(pa, s);
    }
    // the last tile's P V (never the narrow sink tile: a band tile follows it)
    wait_v(ntiles - 1);
    wg_issue_pb<D>(o, pa, dv((ntiles - 1) & 1));
    wg_wait<0>();
    wg_fence_regs(o);

    fwd10_epilogue<D>(out, lse, smem, o, m, l, b, h, q0, r0, warp, g, tg, tid, T, NH);
#endif
}

template<int D>
void attention_forward12(bf16* out, float* lse, const bf16* qkv, int B, int T, int NH, int W, int S) {
    const size_t smem = fwd10_smem<D>();
    static bool configured = false;
    if (!configured) {
        cudaCheck(cudaFuncSetAttribute(attention_forward_kernel12<D>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
        configured = true;
    }
    const CUtensorMap map = rows_tensor_map(qkv, B, T, 3 * NH * D, 64);
    dim3 grid(ceil_div(T, 64), NH, B);   // a head's query tiles side by side: they share K / V in the L2
    attention_forward_kernel12<D><<<grid, 128, smem>>>(out, lse, map, B, T, NH, W, S);
    cudaCheckLaunch();
}
// ---- end of versions 10 to 12

#ifndef ATTENTION_FORWARD_NO_MAIN  // attention_general.cu includes this file for its tile functions
// version dispatch
static const int NUM_VERSIONS = 12;
static const char* version_names[NUM_VERSIONS + 1] = {
    "", "v1 naive", "v2 flash fp32", "v3 mma.sync", "v4 mma+cp.async", "v5 2 m-tiles/warp",
    "v6 pipelined QK", "v7 lean v4", "v8 wgmma", "v9 wgmma 1 wg/block",
    "v10 TMA loads", "v11 narrow sinks", "v12 PV under softmax"};

// v8 to v12 need the sm_90a build (wgmma; TMA from v10 on) and a Hopper GPU; every other version runs everywhere
static bool version_supported(int version) {
    return version < 8 || wgmma_available();
}

template<int D>
void attention_forward_d(int version, bf16* out, float* lse, const bf16* qkv, int B, int T, int NH, int W, int S) {
    switch (version) {
        case 1: attention_forward1<D>(out, lse, qkv, B, T, NH, W, S); break;
        case 2: attention_forward2<D>(out, lse, qkv, B, T, NH, W, S); break;
        case 3: attention_forward3<D>(out, lse, qkv, B, T, NH, W, S); break;
        case 4: attention_forward4<D>(out, lse, qkv, B, T, NH, W, S); break;
        case 5: attention_forward5<D>(out, lse, qkv, B, T, NH, W, S); break;
        case 6: attention_forward6<D>(out, lse, qkv, B, T, NH, W, S); break;
        case 7: attention_forward7<D>(out, lse, qkv, B, T, NH, W, S); break;
        case 8: attention_forward8<D>(out, lse, qkv, B, T, NH, W, S); break;
        case 9: attention_forward9<D>(out, lse, qkv, B, T, NH, W, S); break;
        case 10: attention_forward10<D>(out, lse, qkv, B, T, NH, W, S); break;
        case 11: attention_forward11<D>(out, lse, qkv, B, T, NH, W, S); break;
        case 12: attention_forward12<D>(out, lse, qkv, B, T, NH, W, S); break;
        default: printf("invalid version %d\n", version); exit(EXIT_FAILURE);
    }
}
void attention_forward(int version, bf16* out, float* lse, const bf16* qkv,
                       int B, int T, int NH, int D, int W, int S) {
    if (D == 64) attention_forward_d<64>(version, out, lse, qkv, B, T, NH, W, S);
    else if (D == 128) attention_forward_d<128>(version, out, lse, qkv, B, T, NH, W, S);
    else { printf("unsupported head dim %d\n", D); exit(EXIT_FAILURE); }
}

// ----------------------------------------------------------------------------
// correctness: every version against the CPU reference on small shapes that hit the edge cases

struct Case { int B, T, NH, D, W, S; const char* why; };

static const Case check_cases[] = {
    {2, 200, 3,  64,  40,   0, "T % 64 != 0, W < tile, W % 64 != 0"},
    {2, 200, 3,  64,  40,   4, "+ sinks"},
    {1, 200, 2,  64,   0,   0, "full causal"},
    {2, 200, 2,  64, 256,   4, "W >= T"},
    {1, 600, 2,  64, 200,  16, "unmasked interior tiles"},
    {1, 400, 2,  64,   1,   0, "W = 1: only itself"},
    {1, 333, 2,  64, 100,  70, "sinks span 2 tiles, overlap band"},
    {1, 256, 2,  64,  64,  64, "tile-aligned W and S"},
    {1, 520, 1,  64,   0,   4, "W = 0 with S > 0"},
    {3,  17, 2,  64,   5,   2, "T < tile"},
    {1,   1, 1,  64,   0,   0, "T = 1"},
    {2, 200, 3, 128,  40,   4, "D = 128"},
    {1, 300, 2, 128,   0,   0, "D = 128 full causal"},
    {1, 600, 2, 128, 130, 128, "D = 128 sink tiles unmasked"},
};

// returns the number of failed checks
static int run_checks(unsigned only_version) {
    int fails = 0;
    printf("\n---- correctness vs CPU reference (double); outputs NaN-poisoned before every run ----\n");
    printf("pass: bf16 out rel err < %.0e, fp32 lse rel err < %.0e, no NaN\n", TOL_BF16, TOL_FP32);
    printf("%-3s %-4s %-3s %-4s %-4s %-4s %-36s | %-16s | %-10s %-10s | %s\n",
           "B", "T", "NH", "D", "W", "S", "case", "version", "out err", "lse err", "result");
    for (const Case& cs : check_cases) {
        const int B = cs.B, T = cs.T, NH = cs.NH, D = cs.D, W = cs.W, S = cs.S;
        const size_t n_qkv = (size_t)B * T * 3 * NH * D, n_out = (size_t)B * T * NH * D, n_lse = (size_t)B * NH * T;
        std::vector<float> qkv(n_qkv), out_ref(n_out), lse_ref(n_lse), out_gpu(n_out), lse_gpu(n_lse);
        fill_random_qkv(qkv.data(), B, T, NH, D);
        attention_forward_cpu(out_ref.data(), lse_ref.data(), qkv.data(), B, T, NH, D, W, S);

        bf16 *d_qkv, *d_out; float* d_lse;
        cudaCheck(cudaMalloc(&d_qkv, n_qkv * sizeof(bf16)));
        cudaCheck(cudaMalloc(&d_out, n_out * sizeof(bf16)));
        cudaCheck(cudaMalloc(&d_lse, n_lse * sizeof(float)));
        upload_bf16(d_qkv, qkv.data(), n_qkv);
        for (int v = 1; v <= NUM_VERSIONS; v++) {
            if (only_version && !((only_version >> v) & 1u)) continue;
            if (!version_supported(v)) {
                printf("%-3d %-4d %-3d %-4d %-4d %-4d %-36s | %-16s | skipped: needs the sm_90a build on a Hopper GPU\n",
                       B, T, NH, D, W, S, cs.why, version_names[v]);
                continue;
            }
            poison(d_out, n_out * sizeof(bf16));
            poison(d_lse, n_lse * sizeof(float));
            attention_forward(v, d_out, d_lse, d_qkv, B, T, NH, D, W, S);
            cudaCheck(cudaDeviceSynchronize());
            download_bf16(out_gpu.data(), d_out, n_out);
            cudaCheck(cudaMemcpy(lse_gpu.data(), d_lse, n_lse * sizeof(float), cudaMemcpyDeviceToHost));
            CheckResult co = rel_error(out_gpu.data(), out_ref.data(), n_out, TOL_BF16);
            CheckResult cl = rel_error(lse_gpu.data(), lse_ref.data(), n_lse, TOL_FP32);
            bool ok = co.pass && cl.pass;
            printf("%-3d %-4d %-3d %-4d %-4d %-4d %-36s | %-16s | %-10.2e %-10.2e | %s",
                   B, T, NH, D, W, S, cs.why, version_names[v], co.rel, cl.rel, ok ? "ok" : "FAIL");
            if (!ok) {
                // say where: out index -> (b, t, h, d); lse index -> (b, h, t)
                size_t wo = co.worst, wl = cl.worst;
                printf("  [out: %zu NaN, worst (b%d t%d h%d d%d) gpu %g ref %g; lse: %zu NaN, worst (b%d h%d t%d) gpu %g ref %g]",
                       co.nan_count, (int)(wo / ((size_t)T * NH * D)), (int)(wo / ((size_t)NH * D) % T),
                       (int)(wo / D % NH), (int)(wo % D), out_gpu[wo], out_ref[wo],
                       cl.nan_count, (int)(wl / ((size_t)NH * T)), (int)(wl / T % NH), (int)(wl % T),
                       lse_gpu[wl], lse_ref[wl]);
                fails++;
            }
            printf("\n");
        }
        cudaCheck(cudaFree(d_qkv));
        cudaCheck(cudaFree(d_out));
        cudaCheck(cudaFree(d_lse));
    }
    return fails;
}

// ----------------------------------------------------------------------------
// timing on the canonical workload (SPEC §5): bf16, NH = 12, D = 64, B*T = 32768 tokens

static void run_timing(unsigned only_version) {
    const int NH = 12, TOKENS = 32768;
    // the canonical cases (D = 64), then heads of 128 at T = 4096 for the versions that could serve them
    struct TimingCase { int T, W, S, D; };
    const TimingCase cases[] = {{1024, 256, 4, 64}, {1024, 1024, 4, 64}, {1024, 0, 0, 64},
                                {4096, 256, 4, 64}, {4096, 1024, 4, 64}, {4096, 0, 0, 64},
                                {16384, 256, 4, 64}, {16384, 1024, 4, 64}, {16384, 0, 0, 64},
                                {4096, 256, 4, 128}, {4096, 0, 0, 128}};
    const int DMAX = 128;
    const size_t n_qkv = (size_t)TOKENS * 3 * NH * DMAX, n_out = (size_t)TOKENS * NH * DMAX, n_lse = (size_t)TOKENS * NH;
    const size_t set_bytes = n_qkv * sizeof(bf16) + n_out * sizeof(bf16) + n_lse * sizeof(float);
    const int n_sets = sets_to_defeat_l2(set_bytes);
    std::vector<bf16*> qkv(n_sets), out(n_sets);
    std::vector<float*> lse(n_sets);
    for (int s = 0; s < n_sets; s++) {
        cudaCheck(cudaMalloc(&qkv[s], n_qkv * sizeof(bf16)));
        cudaCheck(cudaMalloc(&out[s], n_out * sizeof(bf16)));
        cudaCheck(cudaMalloc(&lse[s], n_lse * sizeof(float)));
        init_random_bf16_kernel<<<ceil_div(n_qkv, (size_t)256), 256>>>(qkv[s], n_qkv, 1234 + s, 1.5f);
        cudaCheckLaunch();
    }
    cudaCheck(cudaDeviceSynchronize());

    printf("\n---- timing: bf16, NH=%d, D=64 (then 128), B*T=%d tokens, %d input sets of %.0f MB rotated (L2 defeated) ----\n",
           NH, TOKENS, n_sets, set_bytes / 1e6);
    printf("TFLOP/s on allowed pairs (4*P*D); GB/s on compulsory bytes (qkv in, out + lse out);\n");
    printf("%%TC = of %.0f TFLOP/s, %%BW = of %.0f GB/s (the H200's limits, SPEC §5); median of the runs\n",
           H200_TFLOPS, H200_GBPS);
    printf("%-3s %-6s %-5s %-3s | %-16s | %-9s %-8s %-8s %-6s %-6s | %s\n",
           "B", "T", "W", "S", "version", "ms", "TFLOP/s", "GB/s", "%TC", "%BW", "note");
    double naive_tflops = -1.0;   // measured naive throughput, used to skip hopeless naive runs
    for (const TimingCase& tc : cases) {
        const int T = tc.T, B = TOKENS / T, W = tc.W, S = tc.S, D = tc.D;
        const double flops = attention_fwd_flops(B, NH, T, D, W, S);
        const double bytes = attention_fwd_bytes(B, NH, T, D);
        for (int v = 1; v <= NUM_VERSIONS; v++) {
            if (only_version && !((only_version >> v) & 1u)) continue;
            if (D == 128 && v < 7) continue;   // heads of 128: only the versions the programs might run
            if (!version_supported(v)) {
                printf("%-3d %-6d %-5d %-3d | %-16s | skipped: needs the sm_90a build on a Hopper GPU\n",
                       B, T, W, S, version_names[v]);
                continue;
            }
            auto launch = [&](int s) { attention_forward(v, out[s], lse[s], qkv[s], B, T, NH, D, W, S); };
            int warmup = 3, reps = 25;
            char note[64] = "";
            if (D != 64) snprintf(note, sizeof(note), "D = %d", D);
            if (v == 1) {
                // the naive kernel: estimate from the last measured naive throughput, skip if > 2 s
                double est_ms = naive_tflops > 0 ? flops / (naive_tflops * 1e12) * 1e3 : time_once_ms(launch);
                if (est_ms > 2000.0) {
                    printf("%-3d %-6d %-5d %-3d | %-16s | skipped: estimated %.1f s per run\n",
                           B, T, W, S, version_names[v], est_ms / 1e3);
                    continue;
                }
                warmup = 1;
                reps = std::max(1, std::min(9, (int)(1500.0 / std::max(est_ms, 1e-3))));
                snprintf(note, sizeof(note), "%d runs", reps);
            }
            float ms = time_median_ms(launch, n_sets, warmup, reps);
            double tflops = flops / (ms * 1e-3) / 1e12;
            double gbps = bytes / (ms * 1e-3) / 1e9;
            if (v == 1) naive_tflops = tflops;
            printf("%-3d %-6d %-5d %-3d | %-16s | %-9.4f %-8.1f %-8.0f %-6.1f %-6.1f | %s\n",
                   B, T, W, S, version_names[v], ms, tflops, gbps,
                   100.0 * tflops / H200_TFLOPS, 100.0 * gbps / H200_GBPS, note);
        }
    }
    for (int s = 0; s < n_sets; s++) {
        cudaCheck(cudaFree(qkv[s]));
        cudaCheck(cudaFree(out[s]));
        cudaCheck(cudaFree(lse[s]));
    }
}

// ----------------------------------------------------------------------------

int main(int argc, char** argv) {
    unsigned only_version = 0;   // bit v set: run version v; 0: all versions
    bool timing = true;
    for (int a = 1; a < argc; a++) {
        if (strcmp(argv[a], "--check-only") == 0) { timing = false; continue; }
        int v = atoi(argv[a]);
        if (v < 1 || v > NUM_VERSIONS) {
            printf("usage: %s [version 1..%d]... [--check-only]\n", argv[0], NUM_VERSIONS);
            return EXIT_FAILURE;
        }
        only_version |= 1u << v;
    }
    cudaCheck(cudaSetDevice(0));
    print_device();

    int fails = run_checks(only_version);
    if (timing) run_timing(only_version);

    if (fails) {
        printf("\n%d CHECK(S) FAILED\n", fails);
        return EXIT_FAILURE;
    }
    printf("\nall checks passed\n");
    return 0;
}
#endif
