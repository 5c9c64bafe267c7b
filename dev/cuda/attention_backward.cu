/*
Kernels for the attention backward pass with the streaming pattern: causal, sliding window W
(W = 0: full causal; the band 0 <= i - j < W includes the query) plus attention sinks S (keys j < S
are always attended).

  in:  qkv  (B, T, 3, NH, D) bf16
       out  (B, T, NH, D)    bf16   the forward's output
       dout (B, T, NH, D)    bf16
       lse  (B, NH, T)       fp32   the forward's log-sum-exp (natural log) of the scaled scores
  out: dqkv (B, T, 3, NH, D) bf16   every element written exactly once (no atomics: deterministic)
  scratch: Dbuf (B, NH, T)   fp32   D_i = dout_i . out_i

Math (scale = 1/sqrt(D), P_ij = exp(scale q_i.k_j - lse_i) on allowed pairs, 0 elsewhere):
  dV_j = sum_i P_ij dO_i          dP_ij = dO_i . v_j          dS_ij = P_ij (dP_ij - D_i)
  dQ_i = scale sum_j dS_ij k_j    dK_j  = scale sum_i dS_ij q_i

Compile:
nvcc -O3 -arch=sm_90a -lineinfo -Xptxas -v attention_backward.cu -o attention_backward
(sm_90a for versions 10-13's wgmma and TMA; with -arch=sm_90 or older targets they skip themselves)

version 1 is naive: one thread per query row for dQ (recomputing P from lse), then one thread per
key row for dK/dV looping over the queries that attend it
./attention_backward 1

version 2 is flash-style on CUDA cores: D_i precomputed; a block per key tile accumulates dK, dV over
the query tiles that attend it; a separate block-per-query-tile pass computes dQ (so no atomics)
./attention_backward 2

version 3 is version 2 on tensor cores: mma.sync m16n8k16 bf16, ldmatrix, P and dS kept in registers
./attention_backward 3

version 4 is version 3 with the dQ pass on a second stream, concurrent with the dK/dV pass
./attention_backward 4

version 5 is version 4 with cp.async double buffering of the tiles each pass streams
./attention_backward 5

version 6 is version 5 with the long dK/dV runs of the sink tiles split over several blocks
(fp32 partials, fixed-order reduction: still deterministic)
./attention_backward 6

version 7 is version 6 with two m16 tiles per warp (128-key dK/dV blocks, 128-query dQ blocks at
D = 64), chunk skipping, ex2.approx.ftz (measured: slower than v6 except on full causal)
./attention_backward 7

version 8 is version 6's shapes with the first two matmuls of the next tile issued before the
elementwise work of this one (software pipelining; measured: slower than v6)
./attention_backward 8

version 9 is version 6 with fewer instructions per mma: fixed-slot cp.async, ex2.approx.ftz, per-row
edge masks, chunk skipping only on partial tiles (measured: the fastest mma.sync version, 1.2-1.4x v6)
./attention_backward 9

version 10 is version 9 on Hopper's warpgroup MMA (wgmma, sm_90a; D = 64): one warpgroup per 64 rows,
all seven products as wgmma from swizzled smem tiles, the exponentials overlapping the next product
./attention_backward 10

version 11 is version 10 with the tensor memory accelerator (TMA) bringing in the Q, dO, K and V tiles
(one thread, one copy per tile, an mbarrier per buffer) and a head's blocks side by side in the grids
(measured: 1.03-1.15x v10)
./attention_backward 11

version 12 is version 11 with the sink tile's query chunks past every band done as 16 keys (wgmma n16,
P^T and dS^T through shared memory; measured: 1.07x v11 at W = 256, T = 4096, 1.02-1.03x elsewhere
on windows)
./attention_backward 12

version 13 is version 11 for heads of 128 too (two 64-column TMA boxes per tile, 2 blocks per SM;
heads of 64 run version 12; written without a GPU, not yet run: the programs keep v9 for 128)
./attention_backward 13

./attention_backward 9 10   runs the checks and the timing of versions 9 and 10 only

./attention_backward        runs the checks and the timing for all versions
The program exits non-zero if any check fails.
*/

#include "common.h"

#ifndef ATTENTION_BACKWARD_NO_MAIN  // attention_general.cu includes this file after attention_forward.cu, which has it
static const float LOG2E = 1.4426950408889634f;
#endif

// @copy-begin attn-backward-dot
// ----------------------------------------------------------------------------
// D_i = dout_i . out_i, one 16-byte chunk per thread, D/8 lanes per row, butterfly reduction.
// Rows are visited in memory order (b, t, h) so the loads are fully coalesced.

template<int D>
__global__ void attention_backward_dot_kernel(float* Dbuf, const bf16* out, const bf16* dout,
                                              int B, int T, int NH) {
    constexpr int TPR = D / 8;   // 8 or 16 lanes per row
    const int tid = blockIdx.x * blockDim.x + threadIdx.x;
    const int row = tid / TPR, c = tid % TPR;
    const bool ok = row < B * T * NH;
    float sum = 0.f;
    if (ok) {
        float o[8], d[8];
        unpack_bf16x8(*reinterpret_cast<const uint4*>(out + (size_t)row * D + 8 * c), o);
        unpack_bf16x8(*reinterpret_cast<const uint4*>(dout + (size_t)row * D + 8 * c), d);
#pragma unroll
        for (int e = 0; e < 8; e++) sum = fmaf(o[e], d[e], sum);
    }
    // every lane takes part (no early return), out-of-range lanes add zeros
#pragma unroll
    for (int off = TPR / 2; off > 0; off /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, off);
    if (ok && c == 0) {
        const int h = row % NH, t = (row / NH) % T, b = row / (NH * T);
        Dbuf[(size_t)(b * NH + h) * T + t] = sum;
    }
}

template<int D>
void launch_dot(float* Dbuf, const bf16* out, const bf16* dout, int B, int T, int NH) {
    const int block_size = 256;
    const int n = B * T * NH * (D / 8);
    attention_backward_dot_kernel<D><<<ceil_div(n, block_size), block_size>>>(Dbuf, out, dout, B, T, NH);
    cudaCheckLaunch();
}
// @copy-end attn-backward-dot

// ----------------------------------------------------------------------------
// kernel 1: naive. Two kernels, fp32, one thread per row, obviously right and slow.
// Expected: a few TFLOP/s at best (uncoalesced, every thread walks its own rows).

// 1a: one thread per query row (b, h, i): D_i, then dQ_i over the allowed keys (sink segment + band)
template<int D>
__global__ void attention_backward_dq_kernel1(bf16* dqkv, float* Dbuf, const bf16* qkv, const bf16* out,
                                              const bf16* dout, const float* lse,
                                              int B, int T, int NH, int W, int S) {
    int idx = blockIdx.x * blockDim.x + threadIdx.x;   // over (b, h, i), i fastest
    if (idx >= B * NH * T) return;
    const int i = idx % T, h = (idx / T) % NH, b = idx / (T * NH);
    const size_t C = (size_t)NH * D, C3 = 3 * C;
    const bf16* base = qkv + (size_t)b * T * C3 + h * D;
    const bf16* q = base + (size_t)i * C3;
    const bf16* o = out + ((size_t)(b * T + i) * NH + h) * D;
    const bf16* dO = dout + ((size_t)(b * T + i) * NH + h) * D;
    const float scale = 1.0f / sqrtf((float)D);

    float Di = 0.f;
    for (int d = 0; d < D; d++) Di += __bfloat162float(dO[d]) * __bfloat162float(o[d]);
    Dbuf[(size_t)(b * NH + h) * T + i] = Di;   // kernel 1b reads it
    const float L = lse[(size_t)(b * NH + h) * T + i];

    const int jlo = (W > 0) ? max(0, i - W + 1) : 0;
    const int seg_lo[2] = {0, jlo};
    const int seg_hi[2] = {min(S, jlo), i + 1};
    float dq[D];
    for (int d = 0; d < D; d++) dq[d] = 0.f;
    for (int sg = 0; sg < 2; sg++) {
        for (int j = seg_lo[sg]; j < seg_hi[sg]; j++) {
            const bf16* k = base + (size_t)j * C3 + C;
            const bf16* v = base + (size_t)j * C3 + 2 * C;
            float s = 0.f, dp = 0.f;
            for (int d = 0; d < D; d++) {
                s  += __bfloat162float(q[d]) * __bfloat162float(k[d]);
                dp += __bfloat162float(dO[d]) * __bfloat162float(v[d]);
            }
            float p = expf(s * scale - L);
            float ds = p * (dp - Di);
            for (int d = 0; d < D; d++) dq[d] += ds * __bfloat162float(k[d]);
        }
    }
    bf16* dqrow = dqkv + (size_t)(b * T + i) * C3 + h * D;
    for (int d = 0; d < D; d++) dqrow[d] = __float2bfloat16(dq[d] * scale);
}

// 1b: one thread per key row (b, h, j): dK_j, dV_j over the queries that attend j, which are the
// contiguous run [j, last_query_for_keys(j)] (the guard re-tests the pattern, to be obviously right)
template<int D>
__global__ void attention_backward_dkdv_kernel1(bf16* dqkv, const float* Dbuf, const bf16* qkv,
                                                const bf16* dout, const float* lse,
                                                int B, int T, int NH, int W, int S) {
    int idx = blockIdx.x * blockDim.x + threadIdx.x;   // over (b, h, j), j fastest
    if (idx >= B * NH * T) return;
    const int j = idx % T, h = (idx / T) % NH, b = idx / (T * NH);
    const size_t C = (size_t)NH * D, C3 = 3 * C;
    const bf16* base = qkv + (size_t)b * T * C3 + h * D;
    const bf16* k = base + (size_t)j * C3 + C;
    const bf16* v = base + (size_t)j * C3 + 2 * C;
    const float scale = 1.0f / sqrtf((float)D);

    float dk[D], dv[D];
    for (int d = 0; d < D; d++) { dk[d] = 0.f; dv[d] = 0.f; }
    const int i_hi = last_query_for_keys(j, j, W, S, T);
    for (int i = j; i <= i_hi; i++) {
        if (!attn_allowed(i, j, W, S)) continue;
        const bf16* q = base + (size_t)i * C3;
        const bf16* dO = dout + ((size_t)(b * T + i) * NH + h) * D;
        float s = 0.f, dp = 0.f;
        for (int d = 0; d < D; d++) {
            s  += __bfloat162float(q[d]) * __bfloat162float(k[d]);
            dp += __bfloat162float(dO[d]) * __bfloat162float(v[d]);
        }
        float p = expf(s * scale - lse[(size_t)(b * NH + h) * T + i]);
        float ds = p * (dp - Dbuf[(size_t)(b * NH + h) * T + i]);
        for (int d = 0; d < D; d++) {
            dv[d] += p * __bfloat162float(dO[d]);
            dk[d] += ds * __bfloat162float(q[d]);
        }
    }
    bf16* dkrow = dqkv + (size_t)(b * T + j) * C3 + C + h * D;
    bf16* dvrow = dkrow + C;
    for (int d = 0; d < D; d++) {
        dkrow[d] = __float2bfloat16(dk[d] * scale);
        dvrow[d] = __float2bfloat16(dv[d]);
    }
}

// ----------------------------------------------------------------------------
// kernel 2: flash-style on CUDA cores, fp32. Same thread layout as the forward's v2: 64 rows x
// TPR = D/16 lanes, each lane owns the 16 dims in chunks c and c + TPR; butterfly dot products.
// Expected gain over v1: coalesced tile loads, each tile reused by 64 rows, tiles outside the
// pattern skipped, masks only on edge tiles. Still CUDA-core fp32 bound.

// 2a: block per (b, h, 64-key tile); loops over the query tiles [k0, last query attending the tile]
template<int D>
__global__ void __launch_bounds__(64 * (D / 16))
attention_backward_dkdv_kernel2(bf16* dqkv, const bf16* qkv, const bf16* dout, const float* lse,
                                const float* Dbuf, int B, int T, int NH, int W, int S) {
    constexpr int BQ = 64, BK = 64, TPR = D / 16, CH = D / 8, NT = BK * TPR;
    __shared__ __align__(16) bf16 Qs[BQ * D];    // (BQ, D)
    __shared__ __align__(16) bf16 dOs[BQ * D];   // (BQ, D)
    __shared__ float Ls[BQ];                     // lse * log2(e)
    __shared__ float Ds[BQ];                     // D_i

    const int bh = blockIdx.x, b = bh / NH, h = bh % NH;
    const int kt = blockIdx.y;                   // the sink tiles (kt = 0) have the most queries: first
    const int tid = threadIdx.x, r = tid / TPR, c = tid % TPR;
    const int k0 = kt * BK, j = k0 + r;
    const size_t C = (size_t)NH * D, C3 = 3 * C;
    const bf16* qbase = qkv + (size_t)b * T * C3 + h * D;
    const bf16* dobase = dout + (size_t)b * T * C + h * D;   // (T, NH, D) slice of head h
    const float sl2 = LOG2E / sqrtf((float)D);
    const float scale = 1.0f / sqrtf((float)D);

    float kf[16], vf[16], dk[16], dv[16];
    if (j < T) {
        const bf16* krow = qbase + (size_t)j * C3 + C;
        unpack_bf16x8(*reinterpret_cast<const uint4*>(krow + 8 * c), kf);
        unpack_bf16x8(*reinterpret_cast<const uint4*>(krow + 8 * (c + TPR)), kf + 8);
        unpack_bf16x8(*reinterpret_cast<const uint4*>(krow + C + 8 * c), vf);
        unpack_bf16x8(*reinterpret_cast<const uint4*>(krow + C + 8 * (c + TPR)), vf + 8);
    } else {
        for (int d = 0; d < 16; d++) { kf[d] = 0.f; vf[d] = 0.f; }
    }
#pragma unroll
    for (int d = 0; d < 16; d++) { kf[d] *= sl2; dk[d] = 0.f; dv[d] = 0.f; }   // k pre-scaled: s in log2 units

    const int k_last = min(k0 + BK, T) - 1;
    const int q_hi = last_query_for_keys(k0, k_last, W, S, T);
    for (int qt = k0 / BQ; qt <= q_hi / BQ; qt++) {
        const int q0 = qt * BQ;
        __syncthreads();   // done with the previous query tile
        for (int x = tid; x < BQ * CH; x += NT) {
            int rr = x / CH, cc = x % CH, i = q0 + rr;
            uint4 qv = make_uint4(0, 0, 0, 0), dv4 = make_uint4(0, 0, 0, 0);
            if (i < T) {
                qv = *reinterpret_cast<const uint4*>(qbase + (size_t)i * C3 + cc * 8);
                dv4 = *reinterpret_cast<const uint4*>(dobase + (size_t)i * C + cc * 8);
            }
            *reinterpret_cast<uint4*>(Qs + rr * D + cc * 8) = qv;
            *reinterpret_cast<uint4*>(dOs + rr * D + cc * 8) = dv4;
        }
        for (int x = tid; x < BQ; x += NT) {
            int i = q0 + x;
            Ls[x] = (i < T) ? lse[(size_t)(b * NH + h) * T + i] * LOG2E : 0.f;
            Ds[x] = (i < T) ? Dbuf[(size_t)(b * NH + h) * T + i] : 0.f;
        }
        __syncthreads();
        const bool full = block_fully_allowed(q0, BQ, k0, BK, W, S, T);
#pragma unroll 2   // 4 spills at D = 128 (512 threads cap registers at 128)
        for (int ii = 0; ii < BQ; ii++) {
            float qv[16], dov[16];
            unpack_bf16x8(*reinterpret_cast<const uint4*>(Qs + ii * D + 8 * c), qv);
            unpack_bf16x8(*reinterpret_cast<const uint4*>(Qs + ii * D + 8 * (c + TPR)), qv + 8);
            unpack_bf16x8(*reinterpret_cast<const uint4*>(dOs + ii * D + 8 * c), dov);
            unpack_bf16x8(*reinterpret_cast<const uint4*>(dOs + ii * D + 8 * (c + TPR)), dov + 8);
            float s = 0.f, dp = 0.f;
#pragma unroll
            for (int d = 0; d < 16; d++) { s = fmaf(qv[d], kf[d], s); dp = fmaf(dov[d], vf[d], dp); }
#pragma unroll
            for (int off = TPR / 2; off > 0; off /= 2) {
                s  += __shfl_xor_sync(0xffffffffu, s, off);
                dp += __shfl_xor_sync(0xffffffffu, dp, off);
            }
            float p = exp2f(s - Ls[ii]);
            if (!full && !attn_valid(q0 + ii, j, W, S, T)) p = 0.f;   // select, not multiply: p may be inf
            const float ds = p * (dp - Ds[ii]);
#pragma unroll
            for (int d = 0; d < 16; d++) { dv[d] = fmaf(p, dov[d], dv[d]); dk[d] = fmaf(ds, qv[d], dk[d]); }
        }
    }
    if (j < T) {
        for (int d = 0; d < 16; d++) dk[d] *= scale;
        bf16* dkrow = dqkv + (size_t)(b * T + j) * C3 + C + h * D;
        bf16* dvrow = dkrow + C;
        *reinterpret_cast<uint4*>(dkrow + 8 * c) = pack_bf16x8(dk);
        *reinterpret_cast<uint4*>(dkrow + 8 * (c + TPR)) = pack_bf16x8(dk + 8);
        *reinterpret_cast<uint4*>(dvrow + 8 * c) = pack_bf16x8(dv);
        *reinterpret_cast<uint4*>(dvrow + 8 * (c + TPR)) = pack_bf16x8(dv + 8);
    }
}

// 2b: block per (b, h, 64-query tile); visits the same key tiles as the forward
template<int D>
__global__ void __launch_bounds__(64 * (D / 16))
attention_backward_dq_kernel2(bf16* dqkv, const bf16* qkv, const bf16* dout, const float* lse,
                              const float* Dbuf, int B, int T, int NH, int W, int S) {
    constexpr int BQ = 64, BK = 64, TPR = D / 16, CH = D / 8, NT = BQ * TPR;
    __shared__ __align__(16) bf16 Ks[BK * D];   // (BK, D)
    __shared__ __align__(16) bf16 Vs[BK * D];   // (BK, D)

    const int bh = blockIdx.x, b = bh / NH, h = bh % NH;
    const int qt = gridDim.y - 1 - blockIdx.y;  // longest tiles first
    const int tid = threadIdx.x, r = tid / TPR, c = tid % TPR;
    const int q0 = qt * BQ, i = q0 + r;
    const size_t C = (size_t)NH * D, C3 = 3 * C;
    const bf16* qbase = qkv + (size_t)b * T * C3 + h * D;
    const bf16* kbase = qbase + C;
    const bf16* vbase = qbase + 2 * C;
    const float sl2 = LOG2E / sqrtf((float)D);
    const float scale = 1.0f / sqrtf((float)D);

    float q[16], dO[16], dq[16];
    float L2 = 0.f, Di = 0.f;
    if (i < T) {
        const bf16* dorow = dout + ((size_t)(b * T + i) * NH + h) * D;
        unpack_bf16x8(*reinterpret_cast<const uint4*>(qbase + (size_t)i * C3 + 8 * c), q);
        unpack_bf16x8(*reinterpret_cast<const uint4*>(qbase + (size_t)i * C3 + 8 * (c + TPR)), q + 8);
        unpack_bf16x8(*reinterpret_cast<const uint4*>(dorow + 8 * c), dO);
        unpack_bf16x8(*reinterpret_cast<const uint4*>(dorow + 8 * (c + TPR)), dO + 8);
        L2 = lse[(size_t)(b * NH + h) * T + i] * LOG2E;
        Di = Dbuf[(size_t)(b * NH + h) * T + i];
    } else {
        for (int d = 0; d < 16; d++) { q[d] = 0.f; dO[d] = 0.f; }
    }
#pragma unroll
    for (int d = 0; d < 16; d++) { q[d] *= sl2; dq[d] = 0.f; }

    const int q_last = min(q0 + BQ, T) - 1;
    const KeyTileRange kr = key_tiles_for_queries(q0, q_last, W, S, BK);
    const int ntiles = key_tile_count(kr);
    for (int it = 0; it < ntiles; it++) {
        const int k0 = key_tile_at(kr, it) * BK;
        __syncthreads();
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
        const bool full = block_fully_allowed(q0, BQ, k0, BK, W, S, T);
#pragma unroll 4
        for (int jj = 0; jj < BK; jj++) {
            float kf[16], vf[16];
            unpack_bf16x8(*reinterpret_cast<const uint4*>(Ks + jj * D + 8 * c), kf);
            unpack_bf16x8(*reinterpret_cast<const uint4*>(Ks + jj * D + 8 * (c + TPR)), kf + 8);
            unpack_bf16x8(*reinterpret_cast<const uint4*>(Vs + jj * D + 8 * c), vf);
            unpack_bf16x8(*reinterpret_cast<const uint4*>(Vs + jj * D + 8 * (c + TPR)), vf + 8);
            float s = 0.f, dp = 0.f;
#pragma unroll
            for (int d = 0; d < 16; d++) { s = fmaf(q[d], kf[d], s); dp = fmaf(dO[d], vf[d], dp); }
#pragma unroll
            for (int off = TPR / 2; off > 0; off /= 2) {
                s  += __shfl_xor_sync(0xffffffffu, s, off);
                dp += __shfl_xor_sync(0xffffffffu, dp, off);
            }
            float p = exp2f(s - L2);
            if (!full && !attn_valid(i, k0 + jj, W, S, T)) p = 0.f;
            const float ds = p * (dp - Di);
#pragma unroll
            for (int d = 0; d < 16; d++) dq[d] = fmaf(ds, kf[d], dq[d]);
        }
    }
    if (i < T) {
        for (int d = 0; d < 16; d++) dq[d] *= scale;
        bf16* dqrow = dqkv + (size_t)(b * T + i) * C3 + h * D;
        *reinterpret_cast<uint4*>(dqrow + 8 * c) = pack_bf16x8(dq);
        *reinterpret_cast<uint4*>(dqrow + 8 * (c + TPR)) = pack_bf16x8(dq + 8);
    }
}

// @copy-begin attn-backward-tiles
// ----------------------------------------------------------------------------
// the mma.sync versions (kernel 3 on): tensor cores (mma.sync m16n8k16 bf16, fp32 accumulate), 4
// warps per block, smem rows padded to D + 8 elements (conflict-free ldmatrix). Fragment conventions
// as in common.h and in attention_forward.cu's v3: a 16-row A operand comes from row-major smem with
// ldmatrix.x4 at (row lane%16, col (lane/16)*8); a B operand from an (n, k) row-major tile with
// ldmatrix.x4 at (n (lane%8) + (lane/16)*8, k ((lane/8)%2)*8); from a (k, n) row-major tile with
// ldmatrix.x4.trans at (k (lane%8) + ((lane/8)%2)*8, n (lane/16)*8). Each gives the b0,b1 of two
// adjacent n-tiles.

constexpr int TCB_THREADS = 128, TCB_BK = 64, TCB_BQ_DQ = 64;
constexpr int SINK_CHUNK_QUERIES = 1024;   // v6: queries per chunk of a sink tile's dK/dV run

// The query tiles (of BQ queries) that the dK/dV block in grid row y streams (v5+). Rows y < nst * nch
// are v6's chunks of the sink key tiles' runs (the longest, so first); the others are one key tile
// each. A key tile's run goes from the query tile holding its first key (causal) to the last query
// that attends one of its keys; chunk c keeps the c-th SINK_CHUNK_QUERIES of it (possibly none:
// ntiles <= 0, and the block writes zero partials).
struct QueryRun { int kt, chunk, qt0, ntiles; };
template<int BK, int BQ>
__device__ __forceinline__ QueryRun dkdv_query_run(int y, int nst, int nch, int W, int S, int T) {
    QueryRun r;
    r.kt = (y < nst * nch) ? y / nch : nst + (y - nst * nch);
    r.chunk = (y < nst * nch) ? y % nch : -1;
    const int k0 = r.kt * BK, k_last = min(k0 + BK, T) - 1;
    const int q_hi = last_query_for_keys(k0, k_last, W, S, T);
    r.qt0 = k0 / BQ;
    int qt_end = q_hi / BQ;
    if (r.chunk >= 0) {
        constexpr int CT = SINK_CHUNK_QUERIES / BQ;
        r.qt0 += r.chunk * CT;
        qt_end = min(qt_end, r.qt0 + CT - 1);
    }
    r.ntiles = qt_end - r.qt0 + 1;
    return r;
}
// query tile of the dK/dV pass: 32 for D = 128 keeps the four accumulators (dK, dV: D/2 floats each;
// S^T, dP^T: BQ/2 each) in registers
template<int D> __host__ __device__ constexpr int dkdv_bq() { return D == 64 ? 64 : 32; }

// A fragments (16 rows) for k-chunk kc of a row-major (rows, LDS) smem tile
template<int LDS>
__device__ __forceinline__ void ldsm_a(uint32_t* a, const bf16* tile, int row0, int kc, int lane) {
    ldmatrix_x4(a, tile + (row0 + (lane % 16)) * LDS + kc * 16 + (lane / 16) * 8);
}
// B fragments of n-tiles [n0, n0+8) and [n0+8, n0+16), k-chunk kc, from an (n, k) row-major tile
template<int LDS>
__device__ __forceinline__ void ldsm_b_nk(uint32_t* bfr, const bf16* tile, int n0, int kc, int lane) {
    ldmatrix_x4(bfr, tile + (n0 + (lane % 8) + (lane / 16) * 8) * LDS + kc * 16 + ((lane / 8) % 2) * 8);
}
// B fragments of n-tiles [n0, n0+8) and [n0+8, n0+16), k-chunk kc, from a (k, n) row-major tile
template<int LDS>
__device__ __forceinline__ void ldsm_b_kn(uint32_t* bfr, const bf16* tile, int n0, int kc, int lane) {
    ldmatrix_x4_trans(bfr, tile + (kc * 16 + (lane % 8) + ((lane / 8) % 2) * 8) * LDS + n0 + (lane / 16) * 8);
}
// the C fragments of n-tiles 2kc, 2kc+1 (16 x 16 fp32) as the bf16 A fragment of k-chunk kc
__device__ __forceinline__ void acc_to_a(uint32_t* a, const float* c0, const float* c1) {
    a[0] = pack_bf16x2(c0[0], c0[1]);
    a[1] = pack_bf16x2(c0[2], c0[3]);
    a[2] = pack_bf16x2(c1[0], c1[1]);
    a[3] = pack_bf16x2(c1[2], c1[3]);
}
// write a warp's 16 staged smem rows to global rows [t0, t0+16) (rows past T skipped)
template<int D, int LDS>
__device__ __forceinline__ void store_rows16(bf16* dst, size_t stride, const bf16* src, int t0, int T, int lane) {
    constexpr int CH = D / 8;
    for (int x = lane; x < 16 * CH; x += 32) {
        int rr = x / CH, cc = x % CH, t = t0 + rr;
        if (t < T)
            *reinterpret_cast<uint4*>(dst + (size_t)t * stride + cc * 8) =
                *reinterpret_cast<const uint4*>(src + rr * LDS + cc * 8);
    }
}
// stage a 16 x D fp32 accumulator (times mul) as bf16 into 16 smem rows
template<int D, int LDS>
__device__ __forceinline__ void stage_acc16(bf16* rows, const float (&acc)[D / 8][4], float mul, int lane) {
    const int g = lane / 4, tg = lane % 4;
#pragma unroll
    for (int n = 0; n < D / 8; n++) {
        *reinterpret_cast<uint32_t*>(rows + g * LDS + n * 8 + 2 * tg) = pack_bf16x2(acc[n][0] * mul, acc[n][1] * mul);
        *reinterpret_cast<uint32_t*>(rows + (g + 8) * LDS + n * 8 + 2 * tg) = pack_bf16x2(acc[n][2] * mul, acc[n][3] * mul);
    }
}
// @copy-end attn-backward-tiles

// ----------------------------------------------------------------------------
// kernel 3: the tiles above, loaded through registers. Expected gain over v2: ~10x from tensor cores.
// The dK/dV + dQ split costs 7 matmuls instead of 5.

// copy ROWS x D bf16 tile rows [t0, t0+ROWS) of a strided global tensor into smem (rows past T: zero)
template<int D, int ROWS, int LDS>
__device__ __forceinline__ void load_tile(bf16* dst, const bf16* src, size_t stride, int t0, int T, int tid) {
    constexpr int CH = D / 8;
    for (int x = tid; x < ROWS * CH; x += TCB_THREADS) {
        int rr = x / CH, cc = x % CH, t = t0 + rr;
        uint4 u = make_uint4(0, 0, 0, 0);
        if (t < T) u = *reinterpret_cast<const uint4*>(src + (size_t)t * stride + cc * 8);
        *reinterpret_cast<uint4*>(dst + rr * LDS + cc * 8) = u;
    }
}
// the same with cp.async (zero-fill past T, clamped source address); the caller commits and waits
template<int D, int ROWS, int LDS>
__device__ __forceinline__ void load_tile_async(bf16* dst, const bf16* src, size_t stride, int t0, int T, int tid) {
    constexpr int CH = D / 8;
    for (int x = tid; x < ROWS * CH; x += TCB_THREADS) {
        int rr = x / CH, cc = x % CH, t = t0 + rr;
        bool ok = t < T;
        cp_async_16(dst + rr * LDS + cc * 8, src + (ok ? (size_t)t : 0) * stride + cc * 8, ok);
    }
}

// One query tile of the dK/dV pass, for one warp (keys [wk0, wk0+16), rows warp*16.. of Ks / Vs):
//   S^T = K Q^T and dP^T = V dO^T (16 keys x BQ queries), P^T = exp2(S^T sl2 - lse log2e),
//   dS^T = P^T (dP^T - D), then dV += P^T dO and dK += dS^T Q with P^T, dS^T fed from registers.
// Ls / Ds hold the raw lse and D of the tile's BQ queries (zeros past T; those are masked).
template<int D>
__device__ __forceinline__ void dkdv_tile_mma(float (&dk)[D / 8][4], float (&dv)[D / 8][4],
                                              const bf16* Ks, const bf16* Vs, const bf16* Qs, const bf16* dOs,
                                              const float* Ls, const float* Ds, int q0, int wk0,
                                              int warp, int lane, int W, int S, int T, float sl2) {
    constexpr int BQ = dkdv_bq<D>(), LDS = D + 8;
    const int g = lane / 4, tg = lane % 4;
    float st[BQ / 8][4], dpt[BQ / 8][4];
#pragma unroll
    for (int t = 0; t < BQ / 8; t++)
#pragma unroll
        for (int e = 0; e < 4; e++) { st[t][e] = 0.f; dpt[t][e] = 0.f; }
#pragma unroll
    for (int kc = 0; kc < D / 16; kc++) {
        uint32_t ka[4], va[4];
        ldsm_a<LDS>(ka, Ks, warp * 16, kc, lane);
        ldsm_a<LDS>(va, Vs, warp * 16, kc, lane);
#pragma unroll
        for (int np = 0; np < BQ / 16; np++) {
            uint32_t bq[4], bd[4];
            ldsm_b_nk<LDS>(bq, Qs, np * 16, kc, lane);    // Q^T: Q is (n = query, k = dim)
            ldsm_b_nk<LDS>(bd, dOs, np * 16, kc, lane);
            mma_bf16_16816(st[2 * np], ka, bq);
            mma_bf16_16816(st[2 * np + 1], ka, bq + 2);
            mma_bf16_16816(dpt[2 * np], va, bd);
            mma_bf16_16816(dpt[2 * np + 1], va, bd + 2);
        }
    }
    // element (t, e): key wk0 + g + 8(e/2), query q0 + 8t + 2tg + (e%2)
    const bool full = block_fully_allowed(q0, BQ, wk0, 16, W, S, T);
#pragma unroll
    for (int t = 0; t < BQ / 8; t++) {
#pragma unroll
        for (int e = 0; e < 4; e++) {
            const int qi = t * 8 + 2 * tg + (e % 2);
            float p = exp2f(fmaf(st[t][e], sl2, -Ls[qi] * LOG2E));
            if (!full && !attn_valid(q0 + qi, wk0 + g + 8 * (e / 2), W, S, T)) p = 0.f;   // select: p may be inf
            st[t][e] = p;                              // P^T
            dpt[t][e] = p * (dpt[t][e] - Ds[qi]);      // dS^T
        }
    }
    // dV += P^T dO, dK += dS^T Q: k-dim = queries; dO and Q are (k = query, n = dim) row-major
#pragma unroll
    for (int kc = 0; kc < BQ / 16; kc++) {
        uint32_t pa[4], sa[4];
        acc_to_a(pa, st[2 * kc], st[2 * kc + 1]);
        acc_to_a(sa, dpt[2 * kc], dpt[2 * kc + 1]);
#pragma unroll
        for (int np = 0; np < D / 16; np++) {
            uint32_t bd[4], bq[4];
            ldsm_b_kn<LDS>(bd, dOs, np * 16, kc, lane);
            ldsm_b_kn<LDS>(bq, Qs, np * 16, kc, lane);
            mma_bf16_16816(dv[2 * np], pa, bd);
            mma_bf16_16816(dv[2 * np + 1], pa, bd + 2);
            mma_bf16_16816(dk[2 * np], sa, bq);
            mma_bf16_16816(dk[2 * np + 1], sa, bq + 2);
        }
    }
}

// One key tile of the dQ pass, for one warp (queries [wq0, wq0+16), rows warp*16.. of Qs / dOs):
// S = Q K^T, dP = dO V^T, dS = P (dP - D), dQ += dS K with dS fed from registers.
// L2 / Di: lse * log2(e) and D of this thread's rows wq0 + g and wq0 + g + 8.
template<int D>
__device__ __forceinline__ void dq_tile_mma(float (&dq)[D / 8][4], const bf16* Qs, const bf16* dOs,
                                            const bf16* Ks, const bf16* Vs, const float (&L2)[2], const float (&Di)[2],
                                            int k0, int wq0, int warp, int lane, int W, int S, int T, float sl2) {
    constexpr int BK = TCB_BK, LDS = D + 8;
    const int g = lane / 4, tg = lane % 4;
    float s[BK / 8][4], dp[BK / 8][4];
#pragma unroll
    for (int t = 0; t < BK / 8; t++)
#pragma unroll
        for (int e = 0; e < 4; e++) { s[t][e] = 0.f; dp[t][e] = 0.f; }
#pragma unroll
    for (int kc = 0; kc < D / 16; kc++) {
        uint32_t qa[4], da[4];
        ldsm_a<LDS>(qa, Qs, warp * 16, kc, lane);
        ldsm_a<LDS>(da, dOs, warp * 16, kc, lane);
#pragma unroll
        for (int np = 0; np < BK / 16; np++) {
            uint32_t bk[4], bv[4];
            ldsm_b_nk<LDS>(bk, Ks, np * 16, kc, lane);   // K^T: K is (n = key, k = dim)
            ldsm_b_nk<LDS>(bv, Vs, np * 16, kc, lane);
            mma_bf16_16816(s[2 * np], qa, bk);
            mma_bf16_16816(s[2 * np + 1], qa, bk + 2);
            mma_bf16_16816(dp[2 * np], da, bv);
            mma_bf16_16816(dp[2 * np + 1], da, bv + 2);
        }
    }
    // element (t, e): query wq0 + g + 8(e/2), key k0 + 8t + 2tg + (e%2)
    const bool full = block_fully_allowed(wq0, 16, k0, BK, W, S, T);
#pragma unroll
    for (int t = 0; t < BK / 8; t++) {
#pragma unroll
        for (int e = 0; e < 4; e++) {
            const int r = e / 2;
            float p = exp2f(fmaf(s[t][e], sl2, -L2[r]));
            if (!full && !attn_valid(wq0 + g + 8 * r, k0 + t * 8 + 2 * tg + (e % 2), W, S, T)) p = 0.f;
            s[t][e] = p * (dp[t][e] - Di[r]);   // dS
        }
    }
    // dQ += dS K: k-dim = keys; K is (k = key, n = dim) row-major
#pragma unroll
    for (int kc = 0; kc < BK / 16; kc++) {
        uint32_t a[4];
        acc_to_a(a, s[2 * kc], s[2 * kc + 1]);
#pragma unroll
        for (int np = 0; np < D / 16; np++) {
            uint32_t bk[4];
            ldsm_b_kn<LDS>(bk, Ks, np * 16, kc, lane);
            mma_bf16_16816(dq[2 * np], a, bk);
            mma_bf16_16816(dq[2 * np + 1], a, bk + 2);
        }
    }
}

// 3a: block per (b, h, 64-key tile), warp w owns keys [16w, 16w+16); loops over the query tiles that
// attend the key tile. Loads are synchronous: global -> registers -> smem, __syncthreads, compute.
template<int D>
__global__ void __launch_bounds__(TCB_THREADS)
attention_backward_dkdv_kernel3(bf16* dqkv, const bf16* qkv, const bf16* dout, const float* lse,
                                const float* Dbuf, int B, int T, int NH, int W, int S) {
    constexpr int BK = TCB_BK, BQ = dkdv_bq<D>(), LDS = D + 8;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    bf16* Ks  = reinterpret_cast<bf16*>(smem_raw);   // (BK, LDS)
    bf16* Vs  = Ks + BK * LDS;                       // (BK, LDS)
    bf16* Qs  = Vs + BK * LDS;                       // (BQ, LDS)
    bf16* dOs = Qs + BQ * LDS;                       // (BQ, LDS)
    float* Ls = reinterpret_cast<float*>(dOs + BQ * LDS);   // (BQ) lse
    float* Ds = Ls + BQ;                                    // (BQ) D_i

    const int bh = blockIdx.x, b = bh / NH, h = bh % NH;
    const int kt = blockIdx.y;                       // sink tiles (most queries) launched first
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
    const int k0 = kt * BK, wk0 = k0 + warp * 16;    // this warp's first key
    const size_t C = (size_t)NH * D, C3 = 3 * C;
    const bf16* qbase = qkv + (size_t)b * T * C3 + h * D;
    const bf16* dobase = dout + (size_t)b * T * C + h * D;
    const float* lse_bh = lse + (size_t)(b * NH + h) * T;
    const float* D_bh = Dbuf + (size_t)(b * NH + h) * T;
    const float sl2 = LOG2E / sqrtf((float)D);
    const float scale = 1.0f / sqrtf((float)D);

    load_tile<D, BK, LDS>(Ks, qbase + C, C3, k0, T, tid);
    load_tile<D, BK, LDS>(Vs, qbase + 2 * C, C3, k0, T, tid);

    float dk[D / 8][4], dv[D / 8][4];
#pragma unroll
    for (int n = 0; n < D / 8; n++)
#pragma unroll
        for (int e = 0; e < 4; e++) { dk[n][e] = 0.f; dv[n][e] = 0.f; }

    const int k_last = min(k0 + BK, T) - 1;
    const int q_hi = last_query_for_keys(k0, k_last, W, S, T);
    for (int qt = k0 / BQ; qt <= q_hi / BQ; qt++) {
        const int q0 = qt * BQ;
        __syncthreads();   // previous Q/dO tile no longer read
        load_tile<D, BQ, LDS>(Qs, qbase, C3, q0, T, tid);
        load_tile<D, BQ, LDS>(dOs, dobase, C, q0, T, tid);
        for (int x = tid; x < BQ; x += TCB_THREADS) {
            int i = q0 + x;
            Ls[x] = (i < T) ? lse_bh[i] : 0.f;
            Ds[x] = (i < T) ? D_bh[i] : 0.f;
        }
        __syncthreads();   // (first iteration: also publishes the K/V tile)
        dkdv_tile_mma<D>(dk, dv, Ks, Vs, Qs, dOs, Ls, Ds, q0, wk0, warp, lane, W, S, T, sl2);
    }
    // epilogue: the warp's own 16 rows of Ks / Vs (read only by this warp) stage dK, dV as bf16
    __syncwarp();
    stage_acc16<D, LDS>(Ks + warp * 16 * LDS, dk, scale, lane);
    stage_acc16<D, LDS>(Vs + warp * 16 * LDS, dv, 1.f, lane);
    __syncwarp();
    bf16* dkbase = dqkv + (size_t)b * T * C3 + C + h * D;
    store_rows16<D, LDS>(dkbase, C3, Ks + warp * 16 * LDS, wk0, T, lane);
    store_rows16<D, LDS>(dkbase + C, C3, Vs + warp * 16 * LDS, wk0, T, lane);
}

// 3b: block per (b, h, 64-query tile), warp w owns queries [16w, 16w+16); visits the forward's key
// tiles. Loads are synchronous.
template<int D>
__global__ void __launch_bounds__(TCB_THREADS)
attention_backward_dq_kernel3(bf16* dqkv, const bf16* qkv, const bf16* dout, const float* lse,
                              const float* Dbuf, int B, int T, int NH, int W, int S) {
    constexpr int BK = TCB_BK, BQ = TCB_BQ_DQ, LDS = D + 8;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    bf16* Qs  = reinterpret_cast<bf16*>(smem_raw);   // (BQ, LDS)
    bf16* dOs = Qs + BQ * LDS;                       // (BQ, LDS)
    bf16* Ks  = dOs + BQ * LDS;                      // (BK, LDS)
    bf16* Vs  = Ks + BK * LDS;                       // (BK, LDS)

    const int bh = blockIdx.x, b = bh / NH, h = bh % NH;
    const int qt = gridDim.y - 1 - blockIdx.y;       // longest tiles first
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane / 4;
    const int q0 = qt * BQ, wq0 = q0 + warp * 16;
    const size_t C = (size_t)NH * D, C3 = 3 * C;
    const bf16* qbase = qkv + (size_t)b * T * C3 + h * D;
    const bf16* dobase = dout + (size_t)b * T * C + h * D;
    const float sl2 = LOG2E / sqrtf((float)D);
    const float scale = 1.0f / sqrtf((float)D);

    load_tile<D, BQ, LDS>(Qs, qbase, C3, q0, T, tid);
    load_tile<D, BQ, LDS>(dOs, dobase, C, q0, T, tid);
    // row statistics of this thread's rows wq0 + g and wq0 + g + 8
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

    const int q_last = min(q0 + BQ, T) - 1;
    const KeyTileRange kr = key_tiles_for_queries(q0, q_last, W, S, BK);
    const int ntiles = key_tile_count(kr);
    for (int it = 0; it < ntiles; it++) {
        const int k0 = key_tile_at(kr, it) * BK;
        __syncthreads();   // previous K/V tile no longer read
        load_tile<D, BK, LDS>(Ks, qbase + C, C3, k0, T, tid);
        load_tile<D, BK, LDS>(Vs, qbase + 2 * C, C3, k0, T, tid);
        __syncthreads();   // (first iteration: also publishes Q / dO)
        dq_tile_mma<D>(dq, Qs, dOs, Ks, Vs, L2, Di, k0, wq0, warp, lane, W, S, T, sl2);
    }
    // epilogue: stage in the warp's own Q rows (read only by this warp), coalesced stores
    __syncwarp();
    stage_acc16<D, LDS>(Qs + warp * 16 * LDS, dq, scale, lane);
    __syncwarp();
    store_rows16<D, LDS>(dqkv + (size_t)b * T * C3 + h * D, C3, Qs + warp * 16 * LDS, wq0, T, lane);
}

// ----------------------------------------------------------------------------
// kernel 5: v3's math (same tile functions) with cp.async double buffering of what each loop
// streams: the Q / dO / lse / D tiles in the dK/dV pass, the K / V tiles in the dQ pass. Tile it+1
// is in flight while tile it computes. Launched like v4 (dQ pass on a second stream).
// Expected gain over v4: the 1.3-1.6x that cp.async gave the forward (v3 -> v4).
//
// kernel 6 (same kernels, nst > 0): a sink key tile is attended by every later query, so with a window
// its dK/dV block walks all T/BQ query tiles while the others walk ~(W + BQ)/BQ: at T = 16384 that one
// block per head is the tail of the whole pass. v6 splits those runs into chunks of 1024 queries on
// separate blocks (fp32 partials, summed in fixed order by sink_reduce_kernel: still deterministic).
// Expected gain over v5: the T = 16384, W = 256 backward drops to about the T = 4096 time.

// 5a: dK/dV. smem: K, V (BK, LDS) once; Q, dO (2, BQ, LDS); lse, D (2, BQ) fp32
// v6 (nst > 0): the first nst key tiles are sink tiles whose query run is split into nch chunks
// of SINK_CHUNK_QUERIES; blockIdx.y < nst * nch is (sink tile, chunk), the rest are the other tiles.
// A chunk block writes its fp32 dK (scaled), dV to `partial`; sink_reduce_kernel sums the chunks.
template<int D>
__global__ void __launch_bounds__(TCB_THREADS)
attention_backward_dkdv_kernel5(bf16* dqkv, float* partial, const bf16* qkv, const bf16* dout, const float* lse,
                                const float* Dbuf, int B, int T, int NH, int W, int S, int nst, int nch) {
    constexpr int BK = TCB_BK, BQ = dkdv_bq<D>(), LDS = D + 8;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    bf16* Ks  = reinterpret_cast<bf16*>(smem_raw);   // (BK, LDS)
    bf16* Vs  = Ks + BK * LDS;                       // (BK, LDS)
    bf16* Qs  = Vs + BK * LDS;                       // (2, BQ, LDS)
    bf16* dOs = Qs + 2 * BQ * LDS;                   // (2, BQ, LDS)
    float* Ls = reinterpret_cast<float*>(dOs + 2 * BQ * LDS);   // (2, BQ) lse
    float* Ds = Ls + 2 * BQ;                                    // (2, BQ) D_i

    const int bh = blockIdx.x, b = bh / NH, h = bh % NH;
    const QueryRun run = dkdv_query_run<BK, BQ>(blockIdx.y, nst, nch, W, S, T);
    const int kt = run.kt, chunk = run.chunk, qt0 = run.qt0, ntiles = run.ntiles;   // chunk -1: whole run
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
    const int k0 = kt * BK, wk0 = k0 + warp * 16;
    const size_t C = (size_t)NH * D, C3 = 3 * C;
    const bf16* qbase = qkv + (size_t)b * T * C3 + h * D;
    const bf16* dobase = dout + (size_t)b * T * C + h * D;
    const float* lse_bh = lse + (size_t)(b * NH + h) * T;
    const float* D_bh = Dbuf + (size_t)(b * NH + h) * T;
    const float sl2 = LOG2E / sqrtf((float)D);
    const float scale = 1.0f / sqrtf((float)D);


    // issue the async copies of query tile qt0 + it into buffer buf (past T: zero-fill)
    auto load_q_tile = [&](int it, int buf) {
        const int q0 = (qt0 + it) * BQ;
        load_tile_async<D, BQ, LDS>(Qs + buf * BQ * LDS, qbase, C3, q0, T, tid);
        load_tile_async<D, BQ, LDS>(dOs + buf * BQ * LDS, dobase, C, q0, T, tid);
        for (int x = tid; x < BQ; x += TCB_THREADS) {
            int i = q0 + x;
            bool ok = i < T;
            cp_async_4(Ls + buf * BQ + x, lse_bh + (ok ? i : 0), ok);
            cp_async_4(Ds + buf * BQ + x, D_bh + (ok ? i : 0), ok);
        }
    };

    // prologue: K/V and query tile 0 in one group
    load_tile_async<D, BK, LDS>(Ks, qbase + C, C3, k0, T, tid);
    load_tile_async<D, BK, LDS>(Vs, qbase + 2 * C, C3, k0, T, tid);
    if (ntiles > 0) load_q_tile(0, 0);
    cp_async_commit();

    float dk[D / 8][4], dv[D / 8][4];
#pragma unroll
    for (int n = 0; n < D / 8; n++)
#pragma unroll
        for (int e = 0; e < 4; e++) { dk[n][e] = 0.f; dv[n][e] = 0.f; }

    for (int it = 0; it < ntiles; it++) {
        // buffer (it+1)&1 was last read in iteration it-1, which ended with __syncthreads
        if (it + 1 < ntiles) {
            load_q_tile(it + 1, (it + 1) & 1);
            cp_async_commit();
            cp_async_wait<1>();   // everything but tile it+1 has landed
        } else {
            cp_async_wait<0>();
        }
        __syncthreads();          // tile it visible to every warp
        const int buf = it & 1;
        dkdv_tile_mma<D>(dk, dv, Ks, Vs, Qs + buf * BQ * LDS, dOs + buf * BQ * LDS, Ls + buf * BQ, Ds + buf * BQ,
                         (qt0 + it) * BQ, wk0, warp, lane, W, S, T, sl2);
        __syncthreads();          // all warps done with buffer buf before it is refilled
    }
    cp_async_wait<0>();           // an empty chunk never waited for its K/V copies
    if (chunk >= 0) {
        // fp32 partial of this chunk: partial (B*NH, nst, nch, 2, BK, D), [0] = dK * scale, [1] = dV
        const int g = lane / 4, tg = lane % 4;
        float* pk = partial + (((size_t)bh * nst + kt) * nch + chunk) * 2 * BK * D;
        float* pv = pk + BK * D;
#pragma unroll
        for (int n = 0; n < D / 8; n++) {
#pragma unroll
            for (int r = 0; r < 2; r++) {
                const int row = warp * 16 + g + 8 * r;
                *reinterpret_cast<float2*>(pk + row * D + n * 8 + 2 * tg) = make_float2(dk[n][2 * r] * scale, dk[n][2 * r + 1] * scale);
                *reinterpret_cast<float2*>(pv + row * D + n * 8 + 2 * tg) = make_float2(dv[n][2 * r], dv[n][2 * r + 1]);
            }
        }
        return;
    }
    __syncwarp();
    stage_acc16<D, LDS>(Ks + warp * 16 * LDS, dk, scale, lane);
    stage_acc16<D, LDS>(Vs + warp * 16 * LDS, dv, 1.f, lane);
    __syncwarp();
    bf16* dkbase = dqkv + (size_t)b * T * C3 + C + h * D;
    store_rows16<D, LDS>(dkbase, C3, Ks + warp * 16 * LDS, wk0, T, lane);
    store_rows16<D, LDS>(dkbase + C, C3, Vs + warp * 16 * LDS, wk0, T, lane);
}

// @copy-begin attn-backward-sink-reduce
// v6: dK, dV of the sink tiles = the sum of their chunks' fp32 partials, in chunk order (deterministic).
// One thread per (b*NH + h, sink tile, dK|dV, key row, dim), dims fastest: coalesced.
template<int D>
__global__ void sink_reduce_kernel(bf16* dqkv, const float* partial, int B, int T, int NH, int nst, int nch) {
    constexpr int BK = TCB_BK;
    const size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    const size_t total = (size_t)B * NH * nst * 2 * BK * D;
    if (idx >= total) return;
    const int d = (int)(idx % D), row = (int)(idx / D % BK), which = (int)(idx / ((size_t)BK * D) % 2);
    const int kt = (int)(idx / ((size_t)2 * BK * D) % nst);
    const int bh = (int)(idx / ((size_t)2 * BK * D * nst));
    const int key = kt * BK + row;
    if (key >= T) return;
    const float* src = partial + ((size_t)bh * nst + kt) * nch * 2 * BK * D + (size_t)which * BK * D + (size_t)row * D + d;
    float sum = 0.f;
    for (int c = 0; c < nch; c++) sum += src[(size_t)c * 2 * BK * D];
    const int b = bh / NH, h = bh % NH;
    const size_t C = (size_t)NH * D;
    dqkv[(size_t)(b * T + key) * 3 * C + (1 + which) * C + h * D + d] = __float2bfloat16(sum);
}
// @copy-end attn-backward-sink-reduce

// 5b: dQ. smem: Q, dO (BQ, LDS) once; K, V (2, BK, LDS)
template<int D>
__global__ void __launch_bounds__(TCB_THREADS)
attention_backward_dq_kernel5(bf16* dqkv, const bf16* qkv, const bf16* dout, const float* lse,
                              const float* Dbuf, int B, int T, int NH, int W, int S) {
    constexpr int BK = TCB_BK, BQ = TCB_BQ_DQ, LDS = D + 8;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    bf16* Qs  = reinterpret_cast<bf16*>(smem_raw);   // (BQ, LDS)
    bf16* dOs = Qs + BQ * LDS;                       // (BQ, LDS)
    bf16* Ks  = dOs + BQ * LDS;                      // (2, BK, LDS)
    bf16* Vs  = Ks + 2 * BK * LDS;                   // (2, BK, LDS)

    const int bh = blockIdx.x, b = bh / NH, h = bh % NH;
    const int qt = gridDim.y - 1 - blockIdx.y;
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane / 4;
    const int q0 = qt * BQ, wq0 = q0 + warp * 16;
    const size_t C = (size_t)NH * D, C3 = 3 * C;
    const bf16* qbase = qkv + (size_t)b * T * C3 + h * D;
    const bf16* dobase = dout + (size_t)b * T * C + h * D;
    const float sl2 = LOG2E / sqrtf((float)D);
    const float scale = 1.0f / sqrtf((float)D);

    const int q_last = min(q0 + BQ, T) - 1;
    const KeyTileRange kr = key_tiles_for_queries(q0, q_last, W, S, BK);
    const int ntiles = key_tile_count(kr);
    auto load_kv = [&](int it, int buf) {
        const int k0 = key_tile_at(kr, it) * BK;
        load_tile_async<D, BK, LDS>(Ks + buf * BK * LDS, qbase + C, C3, k0, T, tid);
        load_tile_async<D, BK, LDS>(Vs + buf * BK * LDS, qbase + 2 * C, C3, k0, T, tid);
    };

    // prologue: Q, dO and key tile 0 in one group; row statistics with plain loads meanwhile
    load_tile_async<D, BQ, LDS>(Qs, qbase, C3, q0, T, tid);
    load_tile_async<D, BQ, LDS>(dOs, dobase, C, q0, T, tid);
    load_kv(0, 0);
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

    for (int it = 0; it < ntiles; it++) {
        if (it + 1 < ntiles) {
            load_kv(it + 1, (it + 1) & 1);
            cp_async_commit();
            cp_async_wait<1>();
        } else {
            cp_async_wait<0>();
        }
        __syncthreads();
        const int buf = it & 1;
        dq_tile_mma<D>(dq, Qs, dOs, Ks + buf * BK * LDS, Vs + buf * BK * LDS, L2, Di,
                       key_tile_at(kr, it) * BK, wq0, warp, lane, W, S, T, sl2);
        __syncthreads();
    }
    __syncwarp();
    stage_acc16<D, LDS>(Qs + warp * 16 * LDS, dq, scale, lane);
    __syncwarp();
    store_rows16<D, LDS>(dqkv + (size_t)b * T * C3 + h * D, C3, Qs + warp * 16 * LDS, wq0, T, lane);
}

// ----------------------------------------------------------------------------
// kernel launchers

template<int D>
void attention_backward1(bf16* dqkv, float* Dbuf, const bf16* qkv, const bf16* out, const bf16* dout,
                         const float* lse, int B, int T, int NH, int W, int S) {
    const int block_size = 128;
    const int n = B * NH * T;
    attention_backward_dq_kernel1<D><<<ceil_div(n, block_size), block_size>>>(dqkv, Dbuf, qkv, out, dout, lse, B, T, NH, W, S);
    cudaCheckLaunch();
    attention_backward_dkdv_kernel1<D><<<ceil_div(n, block_size), block_size>>>(dqkv, Dbuf, qkv, dout, lse, B, T, NH, W, S);
    cudaCheckLaunch();
}

template<int D>
void attention_backward2(bf16* dqkv, float* Dbuf, const bf16* qkv, const bf16* out, const bf16* dout,
                         const float* lse, int B, int T, int NH, int W, int S) {
    launch_dot<D>(Dbuf, out, dout, B, T, NH);
    dim3 grid(B * NH, ceil_div(T, 64));
    attention_backward_dkdv_kernel2<D><<<grid, 64 * (D / 16)>>>(dqkv, qkv, dout, lse, Dbuf, B, T, NH, W, S);
    cudaCheckLaunch();
    attention_backward_dq_kernel2<D><<<grid, 64 * (D / 16)>>>(dqkv, qkv, dout, lse, Dbuf, B, T, NH, W, S);
    cudaCheckLaunch();
}

// @copy-begin attn-backward-launch-helpers
// dynamic smem of the tensor-core kernels: v3 single-buffers everything, v5 double-buffers the
// tiles its loop streams (D = 128: dK/dV 52 / 70 KB, dQ 70 / 104 KB, so all need the > 48 KB opt-in)
template<int D> constexpr size_t dkdv_smem(bool dbuf) {
    return (size_t)(2 * TCB_BK + (dbuf ? 4 : 2) * dkdv_bq<D>()) * (D + 8) * sizeof(bf16)
         + (size_t)(dbuf ? 4 : 2) * dkdv_bq<D>() * sizeof(float);
}
template<int D> constexpr size_t dq_smem(bool dbuf) {
    return (size_t)(2 * TCB_BQ_DQ + (dbuf ? 4 : 2) * TCB_BK) * (D + 8) * sizeof(bf16);
}

// v6's sink split: with a window every later query attends the sink keys, so a sink key tile's
// dK/dV run is T queries long while a band tile's is about W. The first nst key tiles (of BK keys)
// are split into nch chunks of SINK_CHUNK_QUERIES queries (fp32 partials, added in a fixed order).
// Without a window every run is long anyway: no split.
struct SinkSplit { int nst, nch; };
static SinkSplit sink_split(int T, int W, int S, int BK) {
    SinkSplit sp = {0, 1};
    const int nch = ceil_div(T, SINK_CHUNK_QUERIES);
    if (W > 0 && S > 0 && nch > 1) { sp.nst = std::min(ceil_div(S, BK), ceil_div(T, BK)); sp.nch = nch; }
    return sp;
}

// v4+: the dQ pass runs on a side stream beside the dK/dV pass. Fork: the side stream waits for D_i;
// join: the default stream (and so the caller's next work or timing event) waits for dQ.
struct SideStream { cudaStream_t stream; cudaEvent_t fork, join; };
static SideStream side_stream_create() {
    SideStream s;
    cudaCheck(cudaStreamCreateWithFlags(&s.stream, cudaStreamNonBlocking));
    cudaCheck(cudaEventCreateWithFlags(&s.fork, cudaEventDisableTiming));
    cudaCheck(cudaEventCreateWithFlags(&s.join, cudaEventDisableTiming));
    return s;
}
static void side_stream_fork(const SideStream& s) {
    cudaCheck(cudaEventRecord(s.fork, 0));
    cudaCheck(cudaStreamWaitEvent(s.stream, s.fork, 0));
}
static void side_stream_join(const SideStream& s) {
    cudaCheck(cudaEventRecord(s.join, s.stream));
    cudaCheck(cudaStreamWaitEvent(0, s.join, 0));
}

// fp32 scratch for v6's sink-tile partials, grown on demand (the first call of a shape allocates)
static float* sink_partial = nullptr;
static size_t sink_partial_bytes = 0;
static float* get_sink_partial(size_t bytes) {
    if (bytes > sink_partial_bytes) {
        if (sink_partial) cudaCheck(cudaFree(sink_partial));
        cudaCheck(cudaMalloc(&sink_partial, bytes));
        sink_partial_bytes = bytes;
    }
    return sink_partial;
}
// @copy-end attn-backward-launch-helpers

typedef void (*bwd_kernel_t)(bf16*, const bf16*, const bf16*, const float*, const float*, int, int, int, int, int);

// the tensor-core backward: D_i, then the dK/dV and dQ passes. `concurrent` (v4-v6) runs the dQ pass
// on a second stream beside the dK/dV pass, so its blocks fill the SMs while the long dK/dV blocks of
// the sink tiles (every query attends them) finish; `pipelined` (v5, v6) picks the cp.async kernels;
// `split_sinks` (v6) splits those long sink-tile runs into chunks.
template<int D>
void attention_backward_tc(bf16* dqkv, float* Dbuf, const bf16* qkv, const bf16* out, const bf16* dout,
                           const float* lse, int B, int T, int NH, int W, int S, bool concurrent, bool pipelined,
                           bool split_sinks) {
    static bool configured = false;   // opt in to > 48 KB dynamic smem once per instantiation
    static SideStream side;
    if (!configured) {
        cudaCheck(cudaFuncSetAttribute(attention_backward_dkdv_kernel3<D>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)dkdv_smem<D>(false)));
        cudaCheck(cudaFuncSetAttribute(attention_backward_dq_kernel3<D>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)dq_smem<D>(false)));
        cudaCheck(cudaFuncSetAttribute(attention_backward_dkdv_kernel5<D>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)dkdv_smem<D>(true)));
        cudaCheck(cudaFuncSetAttribute(attention_backward_dq_kernel5<D>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)dq_smem<D>(true)));
        side = side_stream_create();
        configured = true;
    }
    bwd_kernel_t dq = pipelined ? attention_backward_dq_kernel5<D> : attention_backward_dq_kernel3<D>;
    const size_t smem_kv = dkdv_smem<D>(pipelined), smem_q = dq_smem<D>(pipelined);
    const int nkt = ceil_div(T, TCB_BK);
    const dim3 grid_q(B * NH, ceil_div(T, TCB_BQ_DQ));
    const SinkSplit sp = split_sinks ? sink_split(T, W, S, TCB_BK) : SinkSplit{0, 1};   // v6
    const int nst = sp.nst, nch = sp.nch;
    float* partial = nst ? get_sink_partial((size_t)B * NH * nst * nch * 2 * TCB_BK * D * sizeof(float)) : nullptr;
    const dim3 grid_kv(B * NH, nkt + nst * (nch - 1));

    launch_dot<D>(Dbuf, out, dout, B, T, NH);
    cudaStream_t qstream = 0;
    if (concurrent) {
        side_stream_fork(side);
        qstream = side.stream;
    }
    if (pipelined) {
        attention_backward_dkdv_kernel5<D><<<grid_kv, TCB_THREADS, smem_kv>>>(dqkv, partial, qkv, dout, lse, Dbuf,
                                                                              B, T, NH, W, S, nst, nch);
        cudaCheckLaunch();
        if (nst) {
            const size_t n = (size_t)B * NH * nst * 2 * TCB_BK * D;
            sink_reduce_kernel<D><<<(unsigned)ceil_div(n, (size_t)256), 256>>>(dqkv, partial, B, T, NH, nst, nch);
            cudaCheckLaunch();
        }
    } else {
        attention_backward_dkdv_kernel3<D><<<grid_kv, TCB_THREADS, smem_kv>>>(dqkv, qkv, dout, lse, Dbuf, B, T, NH, W, S);
        cudaCheckLaunch();
    }
    dq<<<grid_q, TCB_THREADS, smem_q, qstream>>>(dqkv, qkv, dout, lse, Dbuf, B, T, NH, W, S);
    cudaCheckLaunch();
    if (concurrent) {
        side_stream_join(side);
    }
}

// ----------------------------------------------------------------------------
// version 7 (tile functions, kernels, sink reduction, launcher: this whole region; it also uses the
// shared tensor-core helpers of the v3 section, launch_dot and get_sink_partial)
// v7: v6's structure (D_i kernel, dK/dV pass beside a dQ pass on a second stream, sink tiles split
// into 1024-query chunks with a fixed-order fp32 reduction) with two m16 tiles per warp at D = 64:
// dK/dV blocks own 128 keys (warp: 32 keys; each Q/dO fragment from ldmatrix feeds two mma) over
// 32-query tiles; dQ blocks own 128 queries (warp: 32) over 64-key tiles. Warps skip 16-query /
// 16-key chunks with no allowed pair, one __syncthreads per tile, ex2.approx.ftz, cheaper edge masks.
// D = 128: one m16 tile per warp (64 keys / 64 queries per block), registers would not hold two.
// Predicted (written before measuring): ~1.4x v6 on every case (ldmatrix bytes per mma down ~1.5x
// in dK/dV and ~1.4x in dQ, on the assumption that shared-memory bandwidth was v6's bound).

template<int D> __host__ __device__ constexpr int bwd7_mt() { return D == 64 ? 2 : 1; }
constexpr int BWD7_BQ_KV = 32;   // query tile of the dK/dV pass
// key tile of the dQ pass: 64 at D = 64 spills (two m16 tiles x 64 keys of S and dP is 128 floats)
template<int D> __host__ __device__ constexpr int bwd7_bk_q() { return D == 64 ? 32 : 64; }

// dK/dV, one 32-query tile for one warp owning keys [wk0, wk0 + 16 MT) = smem rows [wrow, wrow + 16 MT)
// of Ks / Vs. Same math as dkdv_tile_mma with an m16 tile index on the key side.
template<int D, int MT, int BQ>
__device__ __forceinline__ void dkdv7_tile(float (&dk)[MT][D / 8][4], float (&dv)[MT][D / 8][4],
                                           const bf16* Ks, const bf16* Vs, const bf16* Qs, const bf16* dOs,
                                           const float* Ls, const float* Ds, int q0, int wk0, int wrow,
                                           int lane, int W, int S, int T, float sl2) {
    constexpr int LDS = D + 8, WK = 16 * MT, NC = BQ / 16;
    const int g = lane / 4, tg = lane % 4;
    unsigned need = 0;   // 16-query chunks with an allowed pair for some key of this warp
#pragma unroll
    for (int c = 0; c < NC; c++)
        if (block_any_allowed(q0 + 16 * c, 16, wk0, WK, W, S, T)) need |= 1u << c;
    if (need == 0) return;

    float st[MT][BQ / 8][4], dpt[MT][BQ / 8][4];
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int t = 0; t < BQ / 8; t++)
#pragma unroll
            for (int e = 0; e < 4; e++) { st[mt][t][e] = 0.f; dpt[mt][t][e] = 0.f; }
#pragma unroll
    for (int kc = 0; kc < D / 16; kc++) {
        uint32_t ka[MT][4], va[MT][4];
#pragma unroll
        for (int mt = 0; mt < MT; mt++) {
            ldsm_a<LDS>(ka[mt], Ks, wrow + 16 * mt, kc, lane);
            ldsm_a<LDS>(va[mt], Vs, wrow + 16 * mt, kc, lane);
        }
#pragma unroll
        for (int np = 0; np < NC; np++) {
            if (need & (1u << np)) {
                uint32_t bq[4], bd[4];
                ldsm_b_nk<LDS>(bq, Qs, np * 16, kc, lane);
                ldsm_b_nk<LDS>(bd, dOs, np * 16, kc, lane);
#pragma unroll
                for (int mt = 0; mt < MT; mt++) {
                    mma_bf16_16816(st[mt][2 * np], ka[mt], bq);
                    mma_bf16_16816(st[mt][2 * np + 1], ka[mt], bq + 2);
                    mma_bf16_16816(dpt[mt][2 * np], va[mt], bd);
                    mma_bf16_16816(dpt[mt][2 * np + 1], va[mt], bd + 2);
                }
            }
        }
    }
    // element (mt, t, e): key wk0 + 16 mt + g + 8(e/2), query q0 + 8t + 2tg + (e%2) = qb + qq
    const bool full = block_fully_allowed(q0, BQ, wk0, WK, W, S, T);
    const int qb = q0 + 2 * tg;
#pragma unroll
    for (int t = 0; t < BQ / 8; t++) {
        if (!(need & (1u << (t / 2)))) continue;
        float L2[2], Dq[2];
#pragma unroll
        for (int e = 0; e < 2; e++) { L2[e] = Ls[t * 8 + 2 * tg + e] * LOG2E; Dq[e] = Ds[t * 8 + 2 * tg + e]; }
#pragma unroll
        for (int mt = 0; mt < MT; mt++)
#pragma unroll
            for (int r = 0; r < 2; r++) {
                // allowed iff lo <= qq < hi: causal (query >= key), query < T, band unless a sink key
                const int key = wk0 + 16 * mt + g + 8 * r;
                const int lo = key - qb;
                int hi = T - qb;
                if (W > 0 && key >= S) hi = min(hi, key + W - qb);
#pragma unroll
                for (int e = 0; e < 2; e++) {
                    const int qq = t * 8 + e;
                    float p = ex2_approx(fmaf(st[mt][t][2 * r + e], sl2, -L2[e]));
                    if (!full && !(qq >= lo && qq < hi)) p = 0.f;   // select: p may be inf there
                    st[mt][t][2 * r + e] = p;
                    dpt[mt][t][2 * r + e] = p * (dpt[mt][t][2 * r + e] - Dq[e]);
                }
            }
    }
    // dV += P^T dO, dK += dS^T Q over the needed query chunks; each B fragment feeds MT m16 tiles
#pragma unroll
    for (int kc = 0; kc < NC; kc++) {
        if (!(need & (1u << kc))) continue;
        uint32_t pa[MT][4], sa[MT][4];
#pragma unroll
        for (int mt = 0; mt < MT; mt++) {
            acc_to_a(pa[mt], st[mt][2 * kc], st[mt][2 * kc + 1]);
            acc_to_a(sa[mt], dpt[mt][2 * kc], dpt[mt][2 * kc + 1]);
        }
#pragma unroll
        for (int np = 0; np < D / 16; np++) {
            uint32_t bd[4], bq[4];
            ldsm_b_kn<LDS>(bd, dOs, np * 16, kc, lane);
            ldsm_b_kn<LDS>(bq, Qs, np * 16, kc, lane);
#pragma unroll
            for (int mt = 0; mt < MT; mt++) {
                mma_bf16_16816(dv[mt][2 * np], pa[mt], bd);
                mma_bf16_16816(dv[mt][2 * np + 1], pa[mt], bd + 2);
                mma_bf16_16816(dk[mt][2 * np], sa[mt], bq);
                mma_bf16_16816(dk[mt][2 * np + 1], sa[mt], bq + 2);
            }
        }
    }
}

// dQ, one key tile for one warp owning queries [wq0, wq0 + 16 MT) = smem rows [wrow, ..) of Qs / dOs.
// L2 / Di: lse log2(e) and D_i of this thread's rows wq0 + 16 mt + g + 8 r.
template<int D, int MT, int BK>
__device__ __forceinline__ void dq7_tile(float (&dq)[MT][D / 8][4], const bf16* Qs, const bf16* dOs,
                                         const bf16* Ks, const bf16* Vs, const float (&L2)[MT][2],
                                         const float (&Di)[MT][2], int k0, int wq0, int wrow, int lane,
                                         int W, int S, int T, float sl2) {
    constexpr int LDS = D + 8, WQ = 16 * MT, NC = BK / 16;
    const int g = lane / 4, tg = lane % 4;
    unsigned need = 0;   // 16-key chunks with an allowed pair for some row of this warp
#pragma unroll
    for (int c = 0; c < NC; c++)
        if (block_any_allowed(wq0, WQ, k0 + 16 * c, 16, W, S, T)) need |= 1u << c;
    if (need == 0) return;

    float s[MT][BK / 8][4], dp[MT][BK / 8][4];
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int t = 0; t < BK / 8; t++)
#pragma unroll
            for (int e = 0; e < 4; e++) { s[mt][t][e] = 0.f; dp[mt][t][e] = 0.f; }
#pragma unroll
    for (int kc = 0; kc < D / 16; kc++) {
        uint32_t qa[MT][4], da[MT][4];
#pragma unroll
        for (int mt = 0; mt < MT; mt++) {
            ldsm_a<LDS>(qa[mt], Qs, wrow + 16 * mt, kc, lane);
            ldsm_a<LDS>(da[mt], dOs, wrow + 16 * mt, kc, lane);
        }
#pragma unroll
        for (int np = 0; np < NC; np++) {
            if (need & (1u << np)) {
                uint32_t bk[4], bv[4];
                ldsm_b_nk<LDS>(bk, Ks, np * 16, kc, lane);
                ldsm_b_nk<LDS>(bv, Vs, np * 16, kc, lane);
#pragma unroll
                for (int mt = 0; mt < MT; mt++) {
                    mma_bf16_16816(s[mt][2 * np], qa[mt], bk);
                    mma_bf16_16816(s[mt][2 * np + 1], qa[mt], bk + 2);
                    mma_bf16_16816(dp[mt][2 * np], da[mt], bv);
                    mma_bf16_16816(dp[mt][2 * np + 1], da[mt], bv + 2);
                }
            }
        }
    }
    // element (mt, t, e): query wq0 + 16 mt + g + 8(e/2), key k0 + 8t + 2tg + (e%2) = kb + kk
    const bool full = block_fully_allowed(wq0, WQ, k0, BK, W, S, T);
    const int kb = k0 + 2 * tg, sk = S - kb;
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int r = 0; r < 2; r++) {
            const int row = wq0 + 16 * mt + g + 8 * r;
            const int hi = (row < T) ? row - kb : -1 - BK;     // causal (rows past T: none)
            const int lo = (W > 0) ? row - W + 1 - kb : -BK;   // band start
#pragma unroll
            for (int t = 0; t < BK / 8; t++) {
                if (!(need & (1u << (t / 2)))) continue;
#pragma unroll
                for (int e = 0; e < 2; e++) {
                    const int kk = t * 8 + e;
                    float p = ex2_approx(fmaf(s[mt][t][2 * r + e], sl2, -L2[mt][r]));
                    if (!full && !(kk <= hi && (kk >= lo || kk < sk))) p = 0.f;
                    s[mt][t][2 * r + e] = p * (dp[mt][t][2 * r + e] - Di[mt][r]);   // dS
                }
            }
        }
    // dQ += dS K over the needed key chunks; each K fragment feeds MT m16 tiles
#pragma unroll
    for (int kc = 0; kc < NC; kc++) {
        if (!(need & (1u << kc))) continue;
        uint32_t a[MT][4];
#pragma unroll
        for (int mt = 0; mt < MT; mt++) acc_to_a(a[mt], s[mt][2 * kc], s[mt][2 * kc + 1]);
#pragma unroll
        for (int np = 0; np < D / 16; np++) {
            uint32_t bk[4];
            ldsm_b_kn<LDS>(bk, Ks, np * 16, kc, lane);
#pragma unroll
            for (int mt = 0; mt < MT; mt++) {
                mma_bf16_16816(dq[mt][2 * np], a[mt], bk);
                mma_bf16_16816(dq[mt][2 * np + 1], a[mt], bk + 2);
            }
        }
    }
}

// 7a: dK/dV. Block per (b, h, 64 MT keys), 4 warps x 16 MT keys; streams 32-query tiles (Q, dO,
// lse, D) double-buffered. smem: K, V (BK, LDS); Q, dO (2, BQ, LDS); lse, D (2, BQ).
// Sink tiles (nst > 0) as in v6: blockIdx.y < nst * nch is (sink tile, chunk), fp32 partials.
template<int D, int MT, int BQ>
__global__ void __launch_bounds__(TCB_THREADS)
attention_backward_dkdv_kernel7(bf16* dqkv, float* partial, const bf16* qkv, const bf16* dout, const float* lse,
                                const float* Dbuf, int B, int T, int NH, int W, int S, int nst, int nch) {
    constexpr int WK = 16 * MT, BK = 4 * WK, LDS = D + 8;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    bf16* Ks  = reinterpret_cast<bf16*>(smem_raw);   // (BK, LDS)
    bf16* Vs  = Ks + BK * LDS;                       // (BK, LDS)
    bf16* Qs  = Vs + BK * LDS;                       // (2, BQ, LDS)
    bf16* dOs = Qs + 2 * BQ * LDS;                   // (2, BQ, LDS)
    float* Ls = reinterpret_cast<float*>(dOs + 2 * BQ * LDS);   // (2, BQ) lse
    float* Ds = Ls + 2 * BQ;                                    // (2, BQ) D_i

    const int bh = blockIdx.x, b = bh / NH, h = bh % NH;
    const QueryRun run = dkdv_query_run<BK, BQ>(blockIdx.y, nst, nch, W, S, T);
    const int kt = run.kt, chunk = run.chunk, qt0 = run.qt0, ntiles = run.ntiles;   // chunk -1: whole run
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
    const int k0 = kt * BK, wrow = warp * WK, wk0 = k0 + wrow;
    const size_t C = (size_t)NH * D, C3 = 3 * C;
    const bf16* qbase = qkv + (size_t)b * T * C3 + h * D;
    const bf16* dobase = dout + (size_t)b * T * C + h * D;
    const float* lse_bh = lse + (size_t)(b * NH + h) * T;
    const float* D_bh = Dbuf + (size_t)(b * NH + h) * T;
    const float sl2 = LOG2E / sqrtf((float)D);
    const float scale = 1.0f / sqrtf((float)D);


    auto load_q_tile = [&](int it, int buf) {
        const int q0 = (qt0 + it) * BQ;
        load_tile_async<D, BQ, LDS>(Qs + buf * BQ * LDS, qbase, C3, q0, T, tid);
        load_tile_async<D, BQ, LDS>(dOs + buf * BQ * LDS, dobase, C, q0, T, tid);
        for (int x = tid; x < BQ; x += TCB_THREADS) {
            int i = q0 + x;
            bool ok = i < T;
            cp_async_4(Ls + buf * BQ + x, lse_bh + (ok ? i : 0), ok);
            cp_async_4(Ds + buf * BQ + x, D_bh + (ok ? i : 0), ok);
        }
    };

    // prologue: K/V and query tile 0 in one group
    load_tile_async<D, BK, LDS>(Ks, qbase + C, C3, k0, T, tid);
    load_tile_async<D, BK, LDS>(Vs, qbase + 2 * C, C3, k0, T, tid);
    if (ntiles > 0) load_q_tile(0, 0);
    cp_async_commit();
    cp_async_wait<0>();
    __syncthreads();

    float dk[MT][D / 8][4], dv[MT][D / 8][4];
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int n = 0; n < D / 8; n++)
#pragma unroll
            for (int e = 0; e < 4; e++) { dk[mt][n][e] = 0.f; dv[mt][n][e] = 0.f; }

    for (int it = 0; it < ntiles; it++) {
        if (it > 0) {
            cp_async_wait<0>();   // tile it has landed
            __syncthreads();      // ... for all, and every warp is done with tile it-1 (buffer (it+1)&1)
        }
        if (it + 1 < ntiles) {
            load_q_tile(it + 1, (it + 1) & 1);
            cp_async_commit();
        }
        const int buf = it & 1;
        dkdv7_tile<D, MT, BQ>(dk, dv, Ks, Vs, Qs + buf * BQ * LDS, dOs + buf * BQ * LDS, Ls + buf * BQ,
                              Ds + buf * BQ, (qt0 + it) * BQ, wk0, wrow, lane, W, S, T, sl2);
    }
    if (chunk >= 0) {
        // fp32 partial of this chunk: partial (B*NH, nst, nch, 2, BK, D), [0] = dK * scale, [1] = dV
        const int g = lane / 4, tg = lane % 4;
        float* pk = partial + (((size_t)bh * nst + kt) * nch + chunk) * 2 * BK * D;
        float* pv = pk + BK * D;
#pragma unroll
        for (int mt = 0; mt < MT; mt++)
#pragma unroll
            for (int n = 0; n < D / 8; n++)
#pragma unroll
                for (int r = 0; r < 2; r++) {
                    const int row = wrow + 16 * mt + g + 8 * r;
                    *reinterpret_cast<float2*>(pk + row * D + n * 8 + 2 * tg) =
                        make_float2(dk[mt][n][2 * r] * scale, dk[mt][n][2 * r + 1] * scale);
                    *reinterpret_cast<float2*>(pv + row * D + n * 8 + 2 * tg) =
                        make_float2(dv[mt][n][2 * r], dv[mt][n][2 * r + 1]);
                }
        return;
    }
    // the warp's own K / V rows (read only by this warp) stage dK, dV as bf16
    __syncwarp();
#pragma unroll
    for (int mt = 0; mt < MT; mt++) {
        stage_acc16<D, LDS>(Ks + (wrow + 16 * mt) * LDS, dk[mt], scale, lane);
        stage_acc16<D, LDS>(Vs + (wrow + 16 * mt) * LDS, dv[mt], 1.f, lane);
    }
    __syncwarp();
    bf16* dkbase = dqkv + (size_t)b * T * C3 + C + h * D;
#pragma unroll
    for (int mt = 0; mt < MT; mt++) {
        store_rows16<D, LDS>(dkbase, C3, Ks + (wrow + 16 * mt) * LDS, wk0 + 16 * mt, T, lane);
        store_rows16<D, LDS>(dkbase + C, C3, Vs + (wrow + 16 * mt) * LDS, wk0 + 16 * mt, T, lane);
    }
}

// v7's sink reduction: v6's with the key tile size as a parameter
template<int D, int BK>
__global__ void sink_reduce_kernel7(bf16* dqkv, const float* partial, int B, int T, int NH, int nst, int nch) {
    const size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    const size_t total = (size_t)B * NH * nst * 2 * BK * D;
    if (idx >= total) return;
    const int d = (int)(idx % D), row = (int)(idx / D % BK), which = (int)(idx / ((size_t)BK * D) % 2);
    const int kt = (int)(idx / ((size_t)2 * BK * D) % nst);
    const int bh = (int)(idx / ((size_t)2 * BK * D * nst));
    const int key = kt * BK + row;
    if (key >= T) return;
    const float* src = partial + ((size_t)bh * nst + kt) * nch * 2 * BK * D + (size_t)which * BK * D + (size_t)row * D + d;
    float sum = 0.f;
    for (int c = 0; c < nch; c++) sum += src[(size_t)c * 2 * BK * D];
    const int b = bh / NH, h = bh % NH;
    const size_t C = (size_t)NH * D;
    dqkv[(size_t)(b * T + key) * 3 * C + (1 + which) * C + h * D + d] = __float2bfloat16(sum);
}

// 7b: dQ. Block per (b, h, 64 MT queries), 4 warps x 16 MT queries; streams BK-key tiles double-
// buffered. smem: Q, dO (BQ, LDS) once; K, V (2, BK, LDS).
template<int D, int MT, int BK>
__global__ void __launch_bounds__(TCB_THREADS)
attention_backward_dq_kernel7(bf16* dqkv, const bf16* qkv, const bf16* dout, const float* lse,
                              const float* Dbuf, int B, int T, int NH, int W, int S) {
    constexpr int WQ = 16 * MT, BQ = 4 * WQ, LDS = D + 8;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    bf16* Qs  = reinterpret_cast<bf16*>(smem_raw);   // (BQ, LDS)
    bf16* dOs = Qs + BQ * LDS;                       // (BQ, LDS)
    bf16* Ks  = dOs + BQ * LDS;                      // (2, BK, LDS)
    bf16* Vs  = Ks + 2 * BK * LDS;                   // (2, BK, LDS)

    const int bh = blockIdx.x, b = bh / NH, h = bh % NH;
    const int qt = gridDim.y - 1 - blockIdx.y;       // longest tiles first
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane / 4;
    const int q0 = qt * BQ, wrow = warp * WQ, wq0 = q0 + wrow;
    const size_t C = (size_t)NH * D, C3 = 3 * C;
    const bf16* qbase = qkv + (size_t)b * T * C3 + h * D;
    const bf16* dobase = dout + (size_t)b * T * C + h * D;
    const float sl2 = LOG2E / sqrtf((float)D);
    const float scale = 1.0f / sqrtf((float)D);

    const int q_last = min(q0 + BQ, T) - 1;
    const KeyTileRange kr = key_tiles_for_queries(q0, q_last, W, S, BK);
    const int ntiles = key_tile_count(kr);
    auto load_kv = [&](int it, int buf) {
        const int k0 = key_tile_at(kr, it) * BK;
        load_tile_async<D, BK, LDS>(Ks + buf * BK * LDS, qbase + C, C3, k0, T, tid);
        load_tile_async<D, BK, LDS>(Vs + buf * BK * LDS, qbase + 2 * C, C3, k0, T, tid);
    };

    // prologue: Q, dO and key tile 0 in one group; row statistics with plain loads meanwhile
    load_tile_async<D, BQ, LDS>(Qs, qbase, C3, q0, T, tid);
    load_tile_async<D, BQ, LDS>(dOs, dobase, C, q0, T, tid);
    load_kv(0, 0);
    cp_async_commit();
    float L2[MT][2], Di[MT][2];
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int r = 0; r < 2; r++) {
            const int i = wq0 + 16 * mt + g + 8 * r;
            L2[mt][r] = (i < T) ? lse[(size_t)(b * NH + h) * T + i] * LOG2E : 0.f;
            Di[mt][r] = (i < T) ? Dbuf[(size_t)(b * NH + h) * T + i] : 0.f;
        }
    float dq[MT][D / 8][4];
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int n = 0; n < D / 8; n++) { dq[mt][n][0] = dq[mt][n][1] = dq[mt][n][2] = dq[mt][n][3] = 0.f; }
    cp_async_wait<0>();
    __syncthreads();

    for (int it = 0; it < ntiles; it++) {
        if (it > 0) {
            cp_async_wait<0>();
            __syncthreads();
        }
        if (it + 1 < ntiles) {
            load_kv(it + 1, (it + 1) & 1);
            cp_async_commit();
        }
        const int buf = it & 1;
        dq7_tile<D, MT, BK>(dq, Qs, dOs, Ks + buf * BK * LDS, Vs + buf * BK * LDS, L2, Di,
                            key_tile_at(kr, it) * BK, wq0, wrow, lane, W, S, T, sl2);
    }
    // the warp's own Q rows (read only by this warp) stage dQ
    __syncwarp();
#pragma unroll
    for (int mt = 0; mt < MT; mt++) stage_acc16<D, LDS>(Qs + (wrow + 16 * mt) * LDS, dq[mt], scale, lane);
    __syncwarp();
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
        store_rows16<D, LDS>(dqkv + (size_t)b * T * C3 + h * D, C3, Qs + (wrow + 16 * mt) * LDS, wq0 + 16 * mt, T, lane);
}

template<int D>
void attention_backward7(bf16* dqkv, float* Dbuf, const bf16* qkv, const bf16* out, const bf16* dout,
                         const float* lse, int B, int T, int NH, int W, int S) {
    constexpr int MT = bwd7_mt<D>(), BQ = BWD7_BQ_KV, BKV = 64 * MT;   // dK/dV: BQ queries x BKV keys
    constexpr int BKQ = bwd7_bk_q<D>(), BQQ = 64 * MT;                      // dQ: BQQ queries x BKQ keys
    constexpr size_t smem_kv = (size_t)(2 * BKV + 4 * BQ) * (D + 8) * sizeof(bf16) + (size_t)4 * BQ * sizeof(float);
    constexpr size_t smem_q = (size_t)(2 * BQQ + 4 * BKQ) * (D + 8) * sizeof(bf16);
    static bool configured = false;
    static SideStream side;
    if (!configured) {
        cudaCheck(cudaFuncSetAttribute(attention_backward_dkdv_kernel7<D, MT, BQ>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem_kv));
        cudaCheck(cudaFuncSetAttribute(attention_backward_dq_kernel7<D, MT, BKQ>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem_q));
        side = side_stream_create();
        configured = true;
    }
    const int nkt = ceil_div(T, BKV);
    const SinkSplit sp = sink_split(T, W, S, BKV);   // v6's split of the sink tiles' runs
    const int nst = sp.nst, nch = sp.nch;
    float* partial = nst ? get_sink_partial((size_t)B * NH * nst * nch * 2 * BKV * D * sizeof(float)) : nullptr;
    const dim3 grid_kv(B * NH, nkt + nst * (nch - 1));
    const dim3 grid_q(B * NH, ceil_div(T, BQQ));

    launch_dot<D>(Dbuf, out, dout, B, T, NH);
    side_stream_fork(side);
    attention_backward_dkdv_kernel7<D, MT, BQ><<<grid_kv, TCB_THREADS, smem_kv>>>(dqkv, partial, qkv, dout, lse, Dbuf,
                                                                                  B, T, NH, W, S, nst, nch);
    cudaCheckLaunch();
    if (nst) {
        const size_t n = (size_t)B * NH * nst * 2 * BKV * D;
        sink_reduce_kernel7<D, BKV><<<(unsigned)ceil_div(n, (size_t)256), 256>>>(dqkv, partial, B, T, NH, nst, nch);
        cudaCheckLaunch();
    }
    attention_backward_dq_kernel7<D, MT, BKQ><<<grid_q, TCB_THREADS, smem_q, side.stream>>>(dqkv, qkv, dout, lse, Dbuf, B, T, NH, W, S);
    cudaCheckLaunch();
    side_stream_join(side);
}
// ---- end of version 7

// ----------------------------------------------------------------------------
// version 8 (phase functions, kernels, launcher: this whole region; it also uses the shared
// tensor-core helpers of the v3 section, launch_dot, get_sink_partial and v6's sink_reduce_kernel)
// v8: v6's tile shapes (one m16 tile per warp: 64-key dK/dV blocks, 64-query dQ blocks) with the
// tile loop software-pipelined in every warp, as forward v6: the first two matmuls of tile it+1
// (S^T and dP^T in dK/dV, S and dP in dQ) are issued before the exp / dS / last matmuls of tile it,
// so the tensor cores keep running through the elementwise work. This needs a third buffer for
// what both halves read (Q, dO, lse, D in dK/dV; K in dQ). Kept from v7: ex2.approx.ftz, 16-row chunk
// skipping as predicated mma, one __syncthreads per tile, cheaper edge masks, v6's sink split.
// v7's two m16 tiles per warp are dropped (measured slower than v6 on the windows).
// Predicted (written before measuring): ~1.25x v6 everywhere.

// @copy-begin attn-backward-v8-phases
// v8's two halves of a tile, which v9 runs too (one after the other): the first two products, then
// the exponentials, dS and the last two products, on the 16-row chunks in `need`
// The first half of both passes, one warp: the two products of its 16 rows [wrow, wrow+16) of A1 and
// A2 with the needed 16-row chunks of B1 and B2 (N rows), c1 = A1 B1^T and c2 = A2 B2^T.
// dK/dV: keys of Ks / Vs against Qs / dOs, S^T = K Q^T and dP^T = V dO^T;
// dQ: queries of Qs / dOs against Ks / Vs, S = Q K^T and dP = dO V^T.
template<int D, int N>
__device__ __forceinline__ void bwd8_phase1(float (&c1)[N / 8][4], float (&c2)[N / 8][4],
                                            const bf16* A1, const bf16* A2, const bf16* B1, const bf16* B2,
                                            unsigned need, int wrow, int lane) {
    constexpr int LDS = D + 8, NC = N / 16;
#pragma unroll
    for (int t = 0; t < N / 8; t++)
#pragma unroll
        for (int e = 0; e < 4; e++) { c1[t][e] = 0.f; c2[t][e] = 0.f; }
#pragma unroll
    for (int kc = 0; kc < D / 16; kc++) {
        uint32_t a1[4], a2[4];
        ldsm_a<LDS>(a1, A1, wrow, kc, lane);
        ldsm_a<LDS>(a2, A2, wrow, kc, lane);
#pragma unroll
        for (int np = 0; np < NC; np++) {
            if (need & (1u << np)) {
                uint32_t b1[4], b2[4];
                ldsm_b_nk<LDS>(b1, B1, np * 16, kc, lane);
                ldsm_b_nk<LDS>(b2, B2, np * 16, kc, lane);
                mma_bf16_16816(c1[2 * np], a1, b1);
                mma_bf16_16816(c1[2 * np + 1], a1, b1 + 2);
                mma_bf16_16816(c2[2 * np], a2, b2);
                mma_bf16_16816(c2[2 * np + 1], a2, b2 + 2);
            }
        }
    }
}

// dK/dV's last two products over the needed query chunks: dV += P^T dO, dK += dS^T Q (P^T in st,
// dS^T in dpt)
template<int D, int BQ>
__device__ __forceinline__ void dkdv8_products(float (&dk)[D / 8][4], float (&dv)[D / 8][4],
                                               const float (&st)[BQ / 8][4], const float (&dpt)[BQ / 8][4],
                                               const bf16* Qs, const bf16* dOs, unsigned need, int lane) {
    constexpr int LDS = D + 8, NC = BQ / 16;
#pragma unroll
    for (int kc = 0; kc < NC; kc++) {
        if (!(need & (1u << kc))) continue;
        uint32_t pa[4], sa[4];
        acc_to_a(pa, st[2 * kc], st[2 * kc + 1]);
        acc_to_a(sa, dpt[2 * kc], dpt[2 * kc + 1]);
#pragma unroll
        for (int np = 0; np < D / 16; np++) {
            uint32_t bd[4], bq[4];
            ldsm_b_kn<LDS>(bd, dOs, np * 16, kc, lane);
            ldsm_b_kn<LDS>(bq, Qs, np * 16, kc, lane);
            mma_bf16_16816(dv[2 * np], pa, bd);
            mma_bf16_16816(dv[2 * np + 1], pa, bd + 2);
            mma_bf16_16816(dk[2 * np], sa, bq);
            mma_bf16_16816(dk[2 * np + 1], sa, bq + 2);
        }
    }
}

// dK/dV second half: P^T, dS^T (mask on edge tiles), dV += P^T dO, dK += dS^T Q over the needed chunks
template<int D, int BQ>
__device__ __forceinline__ void dkdv8_phase2(float (&dk)[D / 8][4], float (&dv)[D / 8][4],
                                             float (&st)[BQ / 8][4], float (&dpt)[BQ / 8][4],
                                             const bf16* Qs, const bf16* dOs, const float* Ls, const float* Ds,
                                             int q0, int wk0, unsigned need, int lane, int W, int S, int T, float sl2) {
    const int g = lane / 4, tg = lane % 4;
    const bool full = block_fully_allowed(q0, BQ, wk0, 16, W, S, T);
    const int qb = q0 + 2 * tg;
#pragma unroll
    for (int t = 0; t < BQ / 8; t++) {
        const float2 Lv = *reinterpret_cast<const float2*>(Ls + t * 8 + 2 * tg);
        const float2 Dv = *reinterpret_cast<const float2*>(Ds + t * 8 + 2 * tg);
        const float L2[2] = {Lv.x * LOG2E, Lv.y * LOG2E}, Dq[2] = {Dv.x, Dv.y};
#pragma unroll
        for (int r = 0; r < 2; r++) {
            const int key = wk0 + g + 8 * r;
            const int lo = key - qb;
            int hi = T - qb;
            if (W > 0 && key >= S) hi = min(hi, key + W - qb);
#pragma unroll
            for (int e = 0; e < 2; e++) {
                const int qq = t * 8 + e;
                float p = ex2_approx(fmaf(st[t][2 * r + e], sl2, -L2[e]));
                if (!full && !(qq >= lo && qq < hi)) p = 0.f;
                st[t][2 * r + e] = p;
                dpt[t][2 * r + e] = p * (dpt[t][2 * r + e] - Dq[e]);
            }
        }
    }
    dkdv8_products<D, BQ>(dk, dv, st, dpt, Qs, dOs, need, lane);
}

// dQ's last product over the needed key chunks: dQ += dS K (dS in s)
template<int D, int BK>
__device__ __forceinline__ void dq8_products(float (&dq)[D / 8][4], const float (&s)[BK / 8][4], const bf16* Ks,
                                             unsigned need, int lane) {
    constexpr int LDS = D + 8, NC = BK / 16;
#pragma unroll
    for (int kc = 0; kc < NC; kc++) {
        if (!(need & (1u << kc))) continue;
        uint32_t a[4];
        acc_to_a(a, s[2 * kc], s[2 * kc + 1]);
#pragma unroll
        for (int np = 0; np < D / 16; np++) {
            uint32_t bk[4];
            ldsm_b_kn<LDS>(bk, Ks, np * 16, kc, lane);
            mma_bf16_16816(dq[2 * np], a, bk);
            mma_bf16_16816(dq[2 * np + 1], a, bk + 2);
        }
    }
}

// dQ second half: dS = P (dP - D) (mask on edge tiles), dQ += dS K over the needed key chunks
template<int D, int BK>
__device__ __forceinline__ void dq8_phase2(float (&dq)[D / 8][4], float (&s)[BK / 8][4], float (&dp)[BK / 8][4],
                                           const bf16* Ks, const float (&L2)[2], const float (&Di)[2],
                                           int k0, int wq0, unsigned need, int lane, int W, int S, int T, float sl2) {
    const int g = lane / 4, tg = lane % 4;
    const bool full = block_fully_allowed(wq0, 16, k0, BK, W, S, T);
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
                float p = ex2_approx(fmaf(s[t][2 * r + e], sl2, -L2[r]));
                if (!full && !(kk <= hi && (kk >= lo || kk < sk))) p = 0.f;
                s[t][2 * r + e] = p * (dp[t][2 * r + e] - Di[r]);
            }
    }
    dq8_products<D, BK>(dq, s, Ks, need, lane);
}
// @copy-end attn-backward-v8-phases

// tiles: dK/dV streams BQ-query tiles, dQ streams BK-key tiles; two sets of the first half's
// accumulators are live at once, so the tiles are half of v6's (D = 64: 32 queries; D = 128: 16 queries
// and 32 keys) to stay within 255 registers without spills
template<int D> __host__ __device__ constexpr int bwd8_bq() { return D == 64 ? 32 : 16; }
template<int D> __host__ __device__ constexpr int bwd8_bk() { return D == 64 ? 64 : 32; }

// 8a: dK/dV. Block per (b, h, 64 keys), warp w owns keys [16w, 16w+16). Query tiles (Q, dO, lse, D)
// stream through 3 buffers: tile it+1 is read by the first half while tile it is read by the second.
template<int D>
__global__ void __launch_bounds__(TCB_THREADS)
attention_backward_dkdv_kernel8(bf16* dqkv, float* partial, const bf16* qkv, const bf16* dout, const float* lse,
                                const float* Dbuf, int B, int T, int NH, int W, int S, int nst, int nch) {
    constexpr int BK = TCB_BK, BQ = bwd8_bq<D>(), LDS = D + 8, NB = 3;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    bf16* Ks  = reinterpret_cast<bf16*>(smem_raw);   // (BK, LDS)
    bf16* Vs  = Ks + BK * LDS;                       // (BK, LDS)
    bf16* Qs  = Vs + BK * LDS;                       // (NB, BQ, LDS)
    bf16* dOs = Qs + NB * BQ * LDS;                  // (NB, BQ, LDS)
    float* Ls = reinterpret_cast<float*>(dOs + NB * BQ * LDS);   // (NB, BQ) lse
    float* Ds = Ls + NB * BQ;                                    // (NB, BQ) D_i

    const int bh = blockIdx.x, b = bh / NH, h = bh % NH;
    const QueryRun run = dkdv_query_run<BK, BQ>(blockIdx.y, nst, nch, W, S, T);
    const int kt = run.kt, chunk = run.chunk, qt0 = run.qt0, ntiles = run.ntiles;
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
    const int k0 = kt * BK, wrow = warp * 16, wk0 = k0 + wrow;
    const size_t C = (size_t)NH * D, C3 = 3 * C;
    const bf16* qbase = qkv + (size_t)b * T * C3 + h * D;
    const bf16* dobase = dout + (size_t)b * T * C + h * D;
    const float* lse_bh = lse + (size_t)(b * NH + h) * T;
    const float* D_bh = Dbuf + (size_t)(b * NH + h) * T;
    const float sl2 = LOG2E / sqrtf((float)D);
    const float scale = 1.0f / sqrtf((float)D);


    auto load_q_tile = [&](int it) {
        const int q0 = (qt0 + it) * BQ, buf = it % NB;
        load_tile_async<D, BQ, LDS>(Qs + buf * BQ * LDS, qbase, C3, q0, T, tid);
        load_tile_async<D, BQ, LDS>(dOs + buf * BQ * LDS, dobase, C, q0, T, tid);
        for (int x = tid; x < BQ; x += TCB_THREADS) {
            int i = q0 + x;
            bool ok = i < T;
            cp_async_4(Ls + buf * BQ + x, lse_bh + (ok ? i : 0), ok);
            cp_async_4(Ds + buf * BQ + x, D_bh + (ok ? i : 0), ok);
        }
    };
    auto need_of = [&](int it) {
        unsigned need = 0;
        const int q0 = (qt0 + it) * BQ;
#pragma unroll
        for (int c = 0; c < BQ / 16; c++)
            if (block_any_allowed(q0 + 16 * c, 16, wk0, 16, W, S, T)) need |= 1u << c;
        return need;
    };

    // prologue: group {K, V, tile 0}, group {tile 1}
    load_tile_async<D, BK, LDS>(Ks, qbase + C, C3, k0, T, tid);
    load_tile_async<D, BK, LDS>(Vs, qbase + 2 * C, C3, k0, T, tid);
    if (ntiles > 0) load_q_tile(0);
    cp_async_commit();
    if (ntiles > 1) load_q_tile(1);
    cp_async_commit();
    cp_async_wait<1>();
    __syncthreads();

    float dk[D / 8][4], dv[D / 8][4];
#pragma unroll
    for (int n = 0; n < D / 8; n++)
#pragma unroll
        for (int e = 0; e < 4; e++) { dk[n][e] = 0.f; dv[n][e] = 0.f; }
    float sta[BQ / 8][4], dpa[BQ / 8][4], stb[BQ / 8][4], dpb[BQ / 8][4];
    unsigned need_a = 0, need_b = 0;
    if (ntiles > 0) {
        need_a = need_of(0);
        bwd8_phase1<D, BQ>(sta, dpa, Ks, Vs, Qs, dOs, need_a, wrow, lane);
    }
    auto step = [&](int it, float (&st)[BQ / 8][4], float (&dpt)[BQ / 8][4], unsigned need_cur,
                    float (&stn)[BQ / 8][4], float (&dpn)[BQ / 8][4], unsigned& need_nxt) {
        cp_async_wait<0>();   // tile it+1 has landed
        __syncthreads();      // ... for everyone; step it-1 (buffers (it-1)%3 and it%3) done everywhere
        if (it + 2 < ntiles) load_q_tile(it + 2);   // into buffer (it-1)%3
        cp_async_commit();
        if (it + 1 < ntiles) {
            const int nb = (it + 1) % NB;
            need_nxt = need_of(it + 1);
            bwd8_phase1<D, BQ>(stn, dpn, Ks, Vs, Qs + nb * BQ * LDS, dOs + nb * BQ * LDS, need_nxt, wrow, lane);
        }
        if (need_cur) {
            const int cb = it % NB;
            dkdv8_phase2<D, BQ>(dk, dv, st, dpt, Qs + cb * BQ * LDS, dOs + cb * BQ * LDS, Ls + cb * BQ, Ds + cb * BQ,
                                (qt0 + it) * BQ, wk0, need_cur, lane, W, S, T, sl2);
        }
    };
    for (int it = 0; it < ntiles; it += 2) {
        step(it, sta, dpa, need_a, stb, dpb, need_b);
        if (it + 1 < ntiles) step(it + 1, stb, dpb, need_b, sta, dpa, need_a);
    }
    cp_async_wait<0>();
    if (chunk >= 0) {
        // fp32 partial, v6's layout (B*NH, nst, nch, 2, BK, D): [0] = dK * scale, [1] = dV
        const int g = lane / 4, tg = lane % 4;
        float* pk = partial + (((size_t)bh * nst + kt) * nch + chunk) * 2 * BK * D;
        float* pv = pk + BK * D;
#pragma unroll
        for (int n = 0; n < D / 8; n++)
#pragma unroll
            for (int r = 0; r < 2; r++) {
                const int row = wrow + g + 8 * r;
                *reinterpret_cast<float2*>(pk + row * D + n * 8 + 2 * tg) = make_float2(dk[n][2 * r] * scale, dk[n][2 * r + 1] * scale);
                *reinterpret_cast<float2*>(pv + row * D + n * 8 + 2 * tg) = make_float2(dv[n][2 * r], dv[n][2 * r + 1]);
            }
        return;
    }
    __syncwarp();
    stage_acc16<D, LDS>(Ks + wrow * LDS, dk, scale, lane);
    stage_acc16<D, LDS>(Vs + wrow * LDS, dv, 1.f, lane);
    __syncwarp();
    bf16* dkbase = dqkv + (size_t)b * T * C3 + C + h * D;
    store_rows16<D, LDS>(dkbase, C3, Ks + wrow * LDS, wk0, T, lane);
    store_rows16<D, LDS>(dkbase + C, C3, Vs + wrow * LDS, wk0, T, lane);
}

// 8b: dQ. Block per (b, h, 64 queries), warp w owns queries [16w, 16w+16). K streams through 3
// buffers (tile it+1 for the first half, tile it for dS K), V through 2.
template<int D>
__global__ void __launch_bounds__(TCB_THREADS)
attention_backward_dq_kernel8(bf16* dqkv, const bf16* qkv, const bf16* dout, const float* lse,
                              const float* Dbuf, int B, int T, int NH, int W, int S) {
    constexpr int BK = bwd8_bk<D>(), BQ = TCB_BQ_DQ, LDS = D + 8, NB = 3;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    bf16* Qs  = reinterpret_cast<bf16*>(smem_raw);   // (BQ, LDS)
    bf16* dOs = Qs + BQ * LDS;                       // (BQ, LDS)
    bf16* Ks  = dOs + BQ * LDS;                      // (NB, BK, LDS)
    bf16* Vs  = Ks + NB * BK * LDS;                  // (2, BK, LDS)

    const int bh = blockIdx.x, b = bh / NH, h = bh % NH;
    const int qt = gridDim.y - 1 - blockIdx.y;
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane / 4;
    const int q0 = qt * BQ, wrow = warp * 16, wq0 = q0 + wrow;
    const size_t C = (size_t)NH * D, C3 = 3 * C;
    const bf16* qbase = qkv + (size_t)b * T * C3 + h * D;
    const bf16* dobase = dout + (size_t)b * T * C + h * D;
    const float sl2 = LOG2E / sqrtf((float)D);
    const float scale = 1.0f / sqrtf((float)D);

    const int q_last = min(q0 + BQ, T) - 1;
    const KeyTileRange kr = key_tiles_for_queries(q0, q_last, W, S, BK);
    const int ntiles = key_tile_count(kr);
    auto load_kv = [&](int it) {
        const int k0 = key_tile_at(kr, it) * BK;
        load_tile_async<D, BK, LDS>(Ks + (it % NB) * BK * LDS, qbase + C, C3, k0, T, tid);
        load_tile_async<D, BK, LDS>(Vs + (it & 1) * BK * LDS, qbase + 2 * C, C3, k0, T, tid);
    };
    auto need_of = [&](int it) {
        unsigned need = 0;
        const int k0 = key_tile_at(kr, it) * BK;
#pragma unroll
        for (int c = 0; c < BK / 16; c++)
            if (block_any_allowed(wq0, 16, k0 + 16 * c, 16, W, S, T)) need |= 1u << c;
        return need;
    };

    // prologue: group {Q, dO, K0, V0}, group {K1, V1}
    load_tile_async<D, BQ, LDS>(Qs, qbase, C3, q0, T, tid);
    load_tile_async<D, BQ, LDS>(dOs, dobase, C, q0, T, tid);
    load_kv(0);
    cp_async_commit();
    if (ntiles > 1) load_kv(1);
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
    cp_async_wait<1>();
    __syncthreads();

    float sa[BK / 8][4], dpa[BK / 8][4], sb[BK / 8][4], dpb[BK / 8][4];
    unsigned need_a = need_of(0), need_b = 0;
    bwd8_phase1<D, BK>(sa, dpa, Qs, dOs, Ks, Vs, need_a, wrow, lane);
    auto step = [&](int it, float (&s)[BK / 8][4], float (&dp)[BK / 8][4], unsigned need_cur,
                    float (&sn)[BK / 8][4], float (&dpn)[BK / 8][4], unsigned& need_nxt) {
        cp_async_wait<0>();   // K/V of tile it+1 have landed
        __syncthreads();      // ... for everyone; step it-1 is done everywhere
        if (it + 2 < ntiles) load_kv(it + 2);   // K over K_{it-1}, V over V_it (read in step it-1)
        cp_async_commit();
        if (it + 1 < ntiles) {
            need_nxt = need_of(it + 1);
            bwd8_phase1<D, BK>(sn, dpn, Qs, dOs, Ks + ((it + 1) % NB) * BK * LDS, Vs + ((it + 1) & 1) * BK * LDS,
                              need_nxt, wrow, lane);
        }
        if (need_cur)
            dq8_phase2<D, BK>(dq, s, dp, Ks + (it % NB) * BK * LDS, L2, Di, key_tile_at(kr, it) * BK, wq0,
                              need_cur, lane, W, S, T, sl2);
    };
    for (int it = 0; it < ntiles; it += 2) {
        step(it, sa, dpa, need_a, sb, dpb, need_b);
        if (it + 1 < ntiles) step(it + 1, sb, dpb, need_b, sa, dpa, need_a);
    }
    __syncwarp();
    stage_acc16<D, LDS>(Qs + wrow * LDS, dq, scale, lane);
    __syncwarp();
    store_rows16<D, LDS>(dqkv + (size_t)b * T * C3 + h * D, C3, Qs + wrow * LDS, wq0, T, lane);
}

template<int D>
void attention_backward8(bf16* dqkv, float* Dbuf, const bf16* qkv, const bf16* out, const bf16* dout,
                         const float* lse, int B, int T, int NH, int W, int S) {
    constexpr int BQ = bwd8_bq<D>(), BK = TCB_BK, BKQ = bwd8_bk<D>();   // dK/dV: BK keys x BQ; dQ: 64 x BKQ
    constexpr size_t smem_kv = (size_t)(2 * BK + 6 * BQ) * (D + 8) * sizeof(bf16) + (size_t)6 * BQ * sizeof(float);
    constexpr size_t smem_q = (size_t)(2 * TCB_BQ_DQ + 5 * BKQ) * (D + 8) * sizeof(bf16);
    static bool configured = false;
    static SideStream side;
    if (!configured) {
        cudaCheck(cudaFuncSetAttribute(attention_backward_dkdv_kernel8<D>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem_kv));
        cudaCheck(cudaFuncSetAttribute(attention_backward_dq_kernel8<D>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem_q));
        side = side_stream_create();
        configured = true;
    }
    const int nkt = ceil_div(T, BK);
    const SinkSplit sp = sink_split(T, W, S, BK);   // v6's split of the sink tiles' runs
    const int nst = sp.nst, nch = sp.nch;
    float* partial = nst ? get_sink_partial((size_t)B * NH * nst * nch * 2 * BK * D * sizeof(float)) : nullptr;
    const dim3 grid_kv(B * NH, nkt + nst * (nch - 1));
    const dim3 grid_q(B * NH, ceil_div(T, TCB_BQ_DQ));

    launch_dot<D>(Dbuf, out, dout, B, T, NH);
    side_stream_fork(side);
    attention_backward_dkdv_kernel8<D><<<grid_kv, TCB_THREADS, smem_kv>>>(dqkv, partial, qkv, dout, lse, Dbuf,
                                                                          B, T, NH, W, S, nst, nch);
    cudaCheckLaunch();
    if (nst) {
        const size_t n = (size_t)B * NH * nst * 2 * BK * D;
        sink_reduce_kernel<D><<<(unsigned)ceil_div(n, (size_t)256), 256>>>(dqkv, partial, B, T, NH, nst, nch);
        cudaCheckLaunch();
    }
    attention_backward_dq_kernel8<D><<<grid_q, TCB_THREADS, smem_q, side.stream>>>(dqkv, qkv, dout, lse, Dbuf, B, T, NH, W, S);
    cudaCheckLaunch();
    side_stream_join(side);
}
// ---- end of version 8

// ----------------------------------------------------------------------------
// version 9 (kernels, launcher: the block below; the tile math is v8's bwd8_phase1, dkdv8_phase2 and
// dq8_phase2, the loads common.h's load_rows_async; also the v3 helpers, launch_dot,
// get_sink_partial and v6's sink_reduce_kernel)
// v9: v6's shapes and loop (64 keys x 64-query tiles in dK/dV, 64 queries x 64-key tiles in dQ at
// D = 64; no software pipelining) with fewer instructions per mma, the lesson of forward v7 (ncu on
// v6: issue slots 40-52% busy, tensor pipe 25-34%, at 2-3 warps per scheduler): cp.async with fixed
// per-thread slots (one add per copy, bounds tests only on the tile crossing T), ex2.approx.ftz
// instead of exp2f's range fix-ups, per-row edge masks, chunk skipping only on partial tiles, one
// __syncthreads per tile. Keeps v6's sink split and the dQ pass on a second stream.
// Predicted (written before measuring): 1.2x v6 on every case.

// @copy-begin attn-backward-v9
// backward v9, the fastest on mma.sync: v6's passes (dK/dV per 64-key tile, dQ per 64-query tile on
// a second stream, the sink tiles' runs split) on v8's tile halves, with fixed-slot cp.async
// (load_rows_async), ex2.approx.ftz, per-row edge masks, chunk skipping only on partial tiles
template<int D>
__global__ void __launch_bounds__(TCB_THREADS)
attention_backward_dkdv_kernel9(bf16* dqkv, float* partial, const bf16* qkv, const bf16* dout, const float* lse,
                                const float* Dbuf, int B, int T, int NH, int W, int S, int nst, int nch) {
    constexpr int BK = TCB_BK, BQ = dkdv_bq<D>(), LDS = D + 8, NT = TCB_THREADS;
    constexpr unsigned ALL = (1u << (BQ / 16)) - 1;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    bf16* Ks  = reinterpret_cast<bf16*>(smem_raw);   // (BK, LDS)
    bf16* Vs  = Ks + BK * LDS;                       // (BK, LDS)
    bf16* Qs  = Vs + BK * LDS;                       // (2, BQ, LDS)
    bf16* dOs = Qs + 2 * BQ * LDS;                   // (2, BQ, LDS)
    float* Ls = reinterpret_cast<float*>(dOs + 2 * BQ * LDS);   // (2, BQ) lse
    float* Ds = Ls + 2 * BQ;                                    // (2, BQ) D_i

    const int bh = blockIdx.x, b = bh / NH, h = bh % NH;
    const QueryRun run = dkdv_query_run<BK, BQ>(blockIdx.y, nst, nch, W, S, T);
    const int kt = run.kt, chunk = run.chunk, qt0 = run.qt0, ntiles = run.ntiles;
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
    const int k0 = kt * BK, wrow = warp * 16, wk0 = k0 + wrow;
    const size_t C = (size_t)NH * D, C3 = 3 * C;
    const bf16* qbase = qkv + (size_t)b * T * C3 + h * D;
    const bf16* dobase = dout + (size_t)b * T * C + h * D;
    const float* lse_bh = lse + (size_t)(b * NH + h) * T;
    const float* D_bh = Dbuf + (size_t)(b * NH + h) * T;
    const float sl2 = LOG2E / sqrtf((float)D);
    const float scale = 1.0f / sqrtf((float)D);


    auto load_q_tile = [&](int it, int buf) {
        const int q0 = (qt0 + it) * BQ;
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
    if (ntiles > 0) load_q_tile(0, 0);
    cp_async_commit();
    cp_async_wait<0>();
    __syncthreads();

    float dk[D / 8][4], dv[D / 8][4];
#pragma unroll
    for (int n = 0; n < D / 8; n++)
#pragma unroll
        for (int e = 0; e < 4; e++) { dk[n][e] = 0.f; dv[n][e] = 0.f; }

    for (int it = 0; it < ntiles; it++) {
        if (it > 0) {
            cp_async_wait<0>();
            __syncthreads();
        }
        if (it + 1 < ntiles) {
            load_q_tile(it + 1, (it + 1) & 1);
            cp_async_commit();
        }
        const int buf = it & 1, q0 = (qt0 + it) * BQ;
        unsigned need = 0;
#pragma unroll
        for (int c = 0; c < BQ / 16; c++)
            if (block_any_allowed(q0 + 16 * c, 16, wk0, 16, W, S, T)) need |= 1u << c;
        const bf16* Qb = Qs + buf * BQ * LDS;
        const bf16* dOb = dOs + buf * BQ * LDS;
        float st[BQ / 8][4], dpt[BQ / 8][4];
        if (need == ALL) {
            bwd8_phase1<D, BQ>(st, dpt, Ks, Vs, Qb, dOb, ALL, wrow, lane);
            dkdv8_phase2<D, BQ>(dk, dv, st, dpt, Qb, dOb, Ls + buf * BQ, Ds + buf * BQ, q0, wk0, ALL, lane, W, S, T, sl2);
        } else if (need) {
            bwd8_phase1<D, BQ>(st, dpt, Ks, Vs, Qb, dOb, need, wrow, lane);
            dkdv8_phase2<D, BQ>(dk, dv, st, dpt, Qb, dOb, Ls + buf * BQ, Ds + buf * BQ, q0, wk0, need, lane, W, S, T, sl2);
        }
    }
    cp_async_wait<0>();
    if (chunk >= 0) {
        const int g = lane / 4, tg = lane % 4;
        float* pk = partial + (((size_t)bh * nst + kt) * nch + chunk) * 2 * BK * D;
        float* pv = pk + BK * D;
#pragma unroll
        for (int n = 0; n < D / 8; n++)
#pragma unroll
            for (int r = 0; r < 2; r++) {
                const int row = wrow + g + 8 * r;
                *reinterpret_cast<float2*>(pk + row * D + n * 8 + 2 * tg) = make_float2(dk[n][2 * r] * scale, dk[n][2 * r + 1] * scale);
                *reinterpret_cast<float2*>(pv + row * D + n * 8 + 2 * tg) = make_float2(dv[n][2 * r], dv[n][2 * r + 1]);
            }
        return;
    }
    __syncwarp();
    stage_acc16<D, LDS>(Ks + wrow * LDS, dk, scale, lane);
    stage_acc16<D, LDS>(Vs + wrow * LDS, dv, 1.f, lane);
    __syncwarp();
    bf16* dkbase = dqkv + (size_t)b * T * C3 + C + h * D;
    store_rows16<D, LDS>(dkbase, C3, Ks + wrow * LDS, wk0, T, lane);
    store_rows16<D, LDS>(dkbase + C, C3, Vs + wrow * LDS, wk0, T, lane);
}

template<int D>
__global__ void __launch_bounds__(TCB_THREADS)
attention_backward_dq_kernel9(bf16* dqkv, const bf16* qkv, const bf16* dout, const float* lse,
                              const float* Dbuf, int B, int T, int NH, int W, int S) {
    constexpr int BK = TCB_BK, BQ = TCB_BQ_DQ, LDS = D + 8, NT = TCB_THREADS;
    constexpr unsigned ALL = (1u << (BK / 16)) - 1;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    bf16* Qs  = reinterpret_cast<bf16*>(smem_raw);   // (BQ, LDS)
    bf16* dOs = Qs + BQ * LDS;                       // (BQ, LDS)
    bf16* Ks  = dOs + BQ * LDS;                      // (2, BK, LDS)
    bf16* Vs  = Ks + 2 * BK * LDS;                   // (2, BK, LDS)

    const int bh = blockIdx.x, b = bh / NH, h = bh % NH;
    const int qt = gridDim.y - 1 - blockIdx.y;
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane / 4;
    const int q0 = qt * BQ, wrow = warp * 16, wq0 = q0 + wrow;
    const size_t C = (size_t)NH * D, C3 = 3 * C;
    const bf16* qbase = qkv + (size_t)b * T * C3 + h * D;
    const bf16* dobase = dout + (size_t)b * T * C + h * D;
    const float sl2 = LOG2E / sqrtf((float)D);
    const float scale = 1.0f / sqrtf((float)D);

    const int q_last = min(q0 + BQ, T) - 1;
    const KeyTileRange kr = key_tiles_for_queries(q0, q_last, W, S, BK);
    const int ntiles = key_tile_count(kr);
    auto load_kv = [&](int it, int buf) {
        const int k0 = key_tile_at(kr, it) * BK;
        load_rows_async<D, BK, LDS, NT>(Ks + buf * BK * LDS, qbase + C, C3, k0, T, tid);
        load_rows_async<D, BK, LDS, NT>(Vs + buf * BK * LDS, qbase + 2 * C, C3, k0, T, tid);
    };

    load_rows_async<D, BQ, LDS, NT>(Qs, qbase, C3, q0, T, tid);
    load_rows_async<D, BQ, LDS, NT>(dOs, dobase, C, q0, T, tid);
    load_kv(0, 0);
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

    for (int it = 0; it < ntiles; it++) {
        if (it > 0) {
            cp_async_wait<0>();
            __syncthreads();
        }
        if (it + 1 < ntiles) {
            load_kv(it + 1, (it + 1) & 1);
            cp_async_commit();
        }
        const int buf = it & 1, k0 = key_tile_at(kr, it) * BK;
        unsigned need = 0;
#pragma unroll
        for (int c = 0; c < BK / 16; c++)
            if (block_any_allowed(wq0, 16, k0 + 16 * c, 16, W, S, T)) need |= 1u << c;
        const bf16* Kb = Ks + buf * BK * LDS;
        const bf16* Vb = Vs + buf * BK * LDS;
        float s[BK / 8][4], dp[BK / 8][4];
        if (need == ALL) {
            bwd8_phase1<D, BK>(s, dp, Qs, dOs, Kb, Vb, ALL, wrow, lane);
            dq8_phase2<D, BK>(dq, s, dp, Kb, L2, Di, k0, wq0, ALL, lane, W, S, T, sl2);
        } else if (need) {
            bwd8_phase1<D, BK>(s, dp, Qs, dOs, Kb, Vb, need, wrow, lane);
            dq8_phase2<D, BK>(dq, s, dp, Kb, L2, Di, k0, wq0, need, lane, W, S, T, sl2);
        }
    }
    __syncwarp();
    stage_acc16<D, LDS>(Qs + wrow * LDS, dq, scale, lane);
    __syncwarp();
    store_rows16<D, LDS>(dqkv + (size_t)b * T * C3 + h * D, C3, Qs + wrow * LDS, wq0, T, lane);
}

template<int D>
void attention_backward9(bf16* dqkv, float* Dbuf, const bf16* qkv, const bf16* out, const bf16* dout,
                         const float* lse, int B, int T, int NH, int W, int S) {
    constexpr int BQ = dkdv_bq<D>(), BK = TCB_BK;
    constexpr size_t smem_kv = dkdv_smem<D>(true), smem_q = dq_smem<D>(true);   // v5/v6's layouts
    static bool configured = false;
    static SideStream side;
    if (!configured) {
        cudaCheck(cudaFuncSetAttribute(attention_backward_dkdv_kernel9<D>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem_kv));
        cudaCheck(cudaFuncSetAttribute(attention_backward_dq_kernel9<D>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem_q));
        side = side_stream_create();
        configured = true;
    }
    const int nkt = ceil_div(T, BK);
    const SinkSplit sp = sink_split(T, W, S, BK);   // v6's split of the sink tiles' runs
    const int nst = sp.nst, nch = sp.nch;
    float* partial = nst ? get_sink_partial((size_t)B * NH * nst * nch * 2 * BK * D * sizeof(float)) : nullptr;
    const dim3 grid_kv(B * NH, nkt + nst * (nch - 1));
    const dim3 grid_q(B * NH, ceil_div(T, TCB_BQ_DQ));

    launch_dot<D>(Dbuf, out, dout, B, T, NH);
    side_stream_fork(side);
    attention_backward_dkdv_kernel9<D><<<grid_kv, TCB_THREADS, smem_kv>>>(dqkv, partial, qkv, dout, lse, Dbuf,
                                                                          B, T, NH, W, S, nst, nch);
    cudaCheckLaunch();
    if (nst) {
        const size_t n = (size_t)B * NH * nst * 2 * BK * D;
        sink_reduce_kernel<D><<<(unsigned)ceil_div(n, (size_t)256), 256>>>(dqkv, partial, B, T, NH, nst, nch);
        cudaCheckLaunch();
    }
    attention_backward_dq_kernel9<D><<<grid_q, TCB_THREADS, smem_q, side.stream>>>(dqkv, qkv, dout, lse, Dbuf, B, T, NH, W, S);
    cudaCheckLaunch();
    side_stream_join(side);
}
// ---- end of version 9
// @copy-end attn-backward-v9

// ----------------------------------------------------------------------------
// versions 10 to 12 (kernels, launcher: the block below; attention_backward10 / 11 / 12 below pick the
// variant; uses common.h's wgmma helpers (attn-wgmma) and pattern helpers, launch_dot,
// get_sink_partial and v6's sink_reduce_kernel; D = 64 only)
// v10: v9's two passes (dK/dV per 64-key tile, dQ per 64-query tile on a second stream, v6's sink
// split) on Hopper's warpgroup MMA, as forward v8 did for the forward. A block is one warpgroup; it
// owns 64 rows (keys in dK/dV, queries in dQ) and streams 64-row tiles of the other side through
// 128-byte-swizzled, double-buffered smem. All seven products are wgmma: S^T = K Q^T, dP^T = V dO^T,
// S = Q K^T and dP = dO V^T read both operands from smem (K-major); dV += P^T dO, dK += dS^T Q and
// dQ += dS K take P^T / dS^T / dS from registers (the accumulator layout is the A-fragment layout)
// and dO, Q, K as N-major B operands (the tile that S reads K-major serves dQ N-major).
// Inside a warpgroup the products overlap the elementwise work: S and dP are issued together, the
// exponentials run while dP is still computing, and in dK/dV the dV product runs while dS is formed.
// Predicted (written before measuring): the backward does 7 products per 2 exponentials (the
// forward 2 per 1), so wgmma pays more than in forward v8: 1.4x v9 on full causal, 1.3x at
// W = 1024, 1.2x at W = 256.
// Measured (H200, one run beside v9): full 1.51-1.75x v9 (299 TFLOP/s at T = 4096), W = 1024
// 1.50-1.83x, W = 256 1.42-1.59x; dK error 2.9e-3 (v9: 2.4e-3) from dS^T formed from bf16 P^T.

// @copy-begin attn-backward-v10
// backward v10-v12 (D = 64): v9's two passes on wgmma, one warpgroup per 64 rows (keys in dK/dV,
// queries in dQ) streaming 64-row tiles of the other side through 128-byte-swizzled, double-buffered
// smem; all seven products are wgmma, the exponentials overlap the next product
constexpr int BWD10_ROWS = 64, BWD10_THREADS = 128;
// blocks per SM: occupancy beats registers, as in forward v8. Measured (H200, backward TFLOP/s at
// T = 1024 / 4096 / 16384 full): dK/dV at 2 blocks (180 registers) 198 / 288 / 310; at 3 blocks
// (166 registers; ptxas serializes the wgmma, C7512) 210 / 294 / 317; with dQ at 4 blocks
// (128 registers, no spills) instead of 3 as well: 223 / 300 / 315; and dS^T formed from the bf16
// P^T fragments (154 registers, no serialization): 230 / 305 / 331
// Heads of 128 (v13): 2 blocks per SM for both passes (the six 16 KB tiles of a block make 2 the
// most that fit in shared memory anyway, and dK, dV of 64 x 128 keep 128 accumulators a thread)
template<int D> __host__ __device__ constexpr int bwd10_dkdv_min_blocks() { return D == 64 ? 3 : 2; }
template<int D> __host__ __device__ constexpr int bwd10_dq_min_blocks() { return D == 64 ? 4 : 2; }
constexpr int BWD12_SINK_KEYS = 16;   // v12: sink chunks with S <= 16 take the sinks as wgmma n16
static_assert(BWD12_SINK_KEYS == 16, "the narrow sink chunk is one wgmma n16 wide");
template<int D> __host__ __device__ constexpr size_t bwd10_smem() {   // 6 tiles (+ lse, D_i) + alignment
    return 1024 + (size_t)6 * BWD10_ROWS * D * sizeof(bf16) + 4 * BWD10_ROWS * sizeof(float);
}

// a 64-row tile of D columns by TMA: D / 64 boxes of 64 columns, the second at dst + 64 rows * 128 B
// (wg_swz's column blocks), all completing bytes on bar. (Written out rather than as a loop: the loop
// changed the D = 64 kernels' code, and they stay byte-identical to what was measured.)
template<int D>
__device__ __forceinline__ void tma_load_tile64(uint32_t dst, const CUtensorMap* map, int col, int row, int z, uint32_t bar) {
    tma_load_box(dst, map, col, row, z, bar);
    if constexpr (D == 128) tma_load_box(dst + 64 * 128, map, col + 64, row, z, bar);
    static_assert(D == 64 || D == 128, "heads of 64 or 128");
}

// a thread's two accumulator rows row0, row0 + 8 of a 64 x D wgmma result (column 8n + 2tg + e at
// acc[4n + 2r + e]) times mul, as bf16 into the rows of dst (stride elements apart); rows past T skipped
template<int D>
__device__ __forceinline__ void bwd10_store_rows(bf16* dst, size_t stride, const float (&acc)[D / 2], int row0, int tg,
                                                 int T, float mul) {
#pragma unroll
    for (int r = 0; r < 2; r++) {
        const int row = row0 + 8 * r;
        if (row >= T) continue;
#pragma unroll
        for (int n = 0; n < D / 8; n++)
            *reinterpret_cast<uint32_t*>(dst + row * stride + n * 8 + 2 * tg) =
                pack_bf16x2(acc[4 * n + 2 * r] * mul, acc[4 * n + 2 * r + 1] * mul);
    }
}

// accumulator columns 8t + 2tg + {0, 1} of rows g, g + 8 -> A fragments of 16-column k-steps
__device__ __forceinline__ void bwd10_pack(uint32_t (&pa)[4][4], const float (&x)[32]) {
#pragma unroll
    for (int t = 0; t < 8; t++) {
        pa[t / 2][2 * (t % 2)] = pack_bf16x2(x[4 * t], x[4 * t + 1]);
        pa[t / 2][2 * (t % 2) + 1] = pack_bf16x2(x[4 * t + 2], x[4 * t + 3]);
    }
}

// v12: wgmma m64n16k16 with A read transposed from smem (a tile stored K rows of 64 contiguous M
// elements, e.g. dO (queries x d) as A = dO^T) and B K-major: the narrow sink chunk's dV^T and dK^T
__device__ __forceinline__ void wgmma_m64n16_tss(float (&acc)[8], uint64_t da, uint64_t db) {
#ifdef HAS_WGMMA
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %10, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n16k16.f32.bf16.bf16 {"
                 "%0, %1, %2, %3, %4, %5, %6, %7}, %8, %9, p, 1, 1, 1, 0;\n}\n"
                 : "+f"(acc[0]), "+f"(acc[1]), "+f"(acc[2]), "+f"(acc[3]), "+f"(acc[4]), "+f"(acc[5]), "+f"(acc[6]), "+f"(acc[7])
                 : "l"(da), "l"(db), "r"(1));
#endif
}

// v12's sink chunk: every query of the chunk lies past the band of all keys of sink tile 0, so only
// keys < S <= 16 have pairs with them. Keys are the N = 16 side here (the main loop has them as the
// M = 64 side of S^T): S = Q K_s^T and dP = dO V_s^T are wgmma n16 (thread rows: queries
// 16 warp + g + 8r of the tile, columns: keys 8t + 2tg + e), P^T and dS^T go through smem as
// 16 x 64 K-major B operands, and dV^T += dO^T P, dK^T += Q^T dS take dO and Q transposed as A
// (thread rows: d = 16 warp + g + 8r). A quarter of the tile's products and exponentials.
// Writes the chunk's fp32 partials (dK scaled) for all 64 keys of the tile, zeros past key 15.
template<int D, class LoadTile>
__device__ __forceinline__ void bwd12_sink_chunk(float* pk, float* pv, LoadTile& load_q_tile, uint32_t Ks, uint32_t Vs,
                                                 uint32_t Qs, uint32_t dOs, const float* Ls, const float* Ds,
                                                 uint32_t bar0, int qt0, int ntiles, int T, int S,
                                                 int tid, int warp, int g, int tg, float sl2, float scale) {
#ifdef HAS_WGMMA
    constexpr int BQ = BWD10_ROWS, BK = BWD10_ROWS;
    constexpr uint32_t TILE = BWD10_ROWS * D * 2;
    // P^T, dS^T: rows 16..31 of the K and V tiles (only keys 0..15 are read here), 1024-byte aligned
    const uint32_t Pt = Ks + 16 * 128, dSt = Vs + 16 * 128;
    float dkt[8], dvt[8];
#pragma unroll
    for (int i = 0; i < 8; i++) { dkt[i] = 0.f; dvt[i] = 0.f; }
    const uint64_t dK = wg_desc(Ks, 16, 1024), dV = wg_desc(Vs, 16, 1024);
    for (int it = 0; it < ntiles; it++) {
        cp_async_wait<0>();            // my lse / D_i copies of tile it landed
        __syncthreads();               // ... everyone's; everyone is done with tile it-1 (and its P^T, dS^T)
        if (it + 1 < ntiles) {
            load_q_tile(it + 1, (it + 1) & 1);
            cp_async_commit();
        }
        mbar_wait(bar0 + 8 * (it & 1), (it >> 1) & 1);
        const int buf = it & 1, q0 = (qt0 + it) * BQ;
        const uint32_t Qb = Qs + buf * TILE, dOb = dOs + buf * TILE;
        float s8[8], dp8[8];
        wg_fence();
#pragma unroll
        for (int kk = 0; kk < D / 16; kk++)
            wgmma_m64n16_ss(s8, wg_desc(Qb + kk * 32, 16, 1024), dK + ((uint32_t)(kk * 32) >> 4), kk > 0);
        wg_commit();
#pragma unroll
        for (int kk = 0; kk < D / 16; kk++)
            wgmma_m64n16_ss(dp8, wg_desc(dOb + kk * 32, 16, 1024), dV + ((uint32_t)(kk * 32) >> 4), kk > 0);
        wg_commit();
        const float* Lb = Ls + buf * BQ;
        const float* Db = Ds + buf * BQ;
        const int ql = warp * 16 + g;  // this thread's query rows in the tile: ql, ql + 8
        float L2[2], Dq[2];
#pragma unroll
        for (int r = 0; r < 2; r++) { L2[r] = Lb[ql + 8 * r] * LOG2E; Dq[r] = Db[ql + 8 * r]; }
        wg_wait<1>();
        wg_fence_regs(s8);
#pragma unroll
        for (int i = 0; i < 8; i++) {
            const int r = (i / 2) % 2, key = 8 * (i / 4) + 2 * tg + (i % 2);
            const float p = ex2_approx(fmaf(s8[i], sl2, -L2[r]));
            s8[i] = (key < S && q0 + ql + 8 * r < T) ? p : 0.f;
        }
        wg_wait<0>();
        wg_fence_regs(dp8);
        // P^T and dS^T as [key][query] rows of 128 bytes, 128-byte swizzle
#pragma unroll
        for (int i = 0; i < 8; i++) {
            const int r = (i / 2) % 2, key = 8 * (i / 4) + 2 * tg + (i % 2), q = ql + 8 * r;
            const uint32_t off = key * 128 + ((((q >> 3) ^ (key & 7)) << 4) | ((q & 7) << 1));
            const float ds = s8[i] * (dp8[i] - Dq[r]);
            asm volatile("st.shared.b16 [%0], %1;\n" :: "r"(Pt + off), "h"(__bfloat16_as_ushort(__float2bfloat16(s8[i]))) : "memory");
            asm volatile("st.shared.b16 [%0], %1;\n" :: "r"(dSt + off), "h"(__bfloat16_as_ushort(__float2bfloat16(ds))) : "memory");
        }
        asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");   // visible to wgmma
        __syncthreads();
        wg_fence();
#pragma unroll
        for (int kk = 0; kk < BQ / 16; kk++) {   // k-step: 16 queries, 16 rows down dO / Q, 32 bytes into P^T / dS^T
            wgmma_m64n16_tss(dvt, wg_desc(dOb + kk * 16 * 128, BQ * 128, 1024), wg_desc(Pt + kk * 32, 16, 1024));
            wgmma_m64n16_tss(dkt, wg_desc(Qb + kk * 16 * 128, BQ * 128, 1024), wg_desc(dSt + kk * 32, 16, 1024));
        }
        wg_commit();
        wg_wait<0>();
        wg_fence_regs(dkt);
        wg_fence_regs(dvt);
    }
    cp_async_wait<0>();
    // partials: key rows 0..15 from the accumulators (d = 16 warp + g + 8r, key = 8t + 2tg + e), 16..63 zero
#pragma unroll
    for (int i = 0; i < 8; i++) {
        const int d = warp * 16 + g + 8 * ((i / 2) % 2), key = 8 * (i / 4) + 2 * tg + (i % 2);
        pk[key * D + d] = dkt[i] * scale;
        pv[key * D + d] = dvt[i];
    }
    for (int x = tid; x < (BK - 16) * D / 4; x += BWD10_THREADS) {
        reinterpret_cast<float4*>(pk + 16 * D)[x] = make_float4(0.f, 0.f, 0.f, 0.f);
        reinterpret_cast<float4*>(pv + 16 * D)[x] = make_float4(0.f, 0.f, 0.f, 0.f);
    }
#endif
}

// 10a: dK/dV. Block per (b, h, 64 keys); query tiles (Q, dO, lse, D_i) double-buffered. Thread rows
// (keys) k_r = wk0 + 16 warp + g + 8r; accumulator column 8t + 2tg + e is query q0 + 8t + 2tg + e.
// TMA (v11): Q, dO, K, V by the copy engine (the maps: qkv and dout), a head's blocks side by side.
// NARROW_SINK (v12): sink-tile chunks past every band take the sinks as 16 keys (bwd12_sink_chunk).
template<int D, bool TMA, bool NARROW_SINK>
__global__ void __launch_bounds__(BWD10_THREADS, bwd10_dkdv_min_blocks<D>())
attention_backward_dkdv_kernel10(bf16* dqkv, float* partial, const bf16* qkv, const bf16* dout, const float* lse,
                                 const float* Dbuf, int B, int T, int NH, int W, int S, int nst, int nch,
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
    __shared__ __align__(8) uint64_t tile_full[2];   // TMA: one mbarrier per Q / dO buffer
    const uint32_t bar0 = (uint32_t)__cvta_generic_to_shared(&tile_full[0]);

    static_assert(TMA || !NARROW_SINK, "the narrow sink chunk waits on the TMA path's mbarriers");
    const int bh = TMA ? blockIdx.z * NH + blockIdx.y : blockIdx.x, b = bh / NH, h = bh % NH;
    const QueryRun run = dkdv_query_run<BK, BQ>(TMA ? blockIdx.x : blockIdx.y, nst, nch, W, S, T);
    const int kt = run.kt, chunk = run.chunk, qt0 = run.qt0, ntiles = run.ntiles;
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane / 4, tg = lane % 4;
    const int k0 = kt * BK, kr0 = k0 + warp * 16 + g;   // this thread's keys: kr0, kr0 + 8
    const size_t C = (size_t)NH * D, C3 = 3 * C;
    const bf16* qbase = qkv + (size_t)b * T * C3 + h * D;
    const bf16* dobase = dout + (size_t)b * T * C + h * D;
    const float* lse_bh = lse + (size_t)(b * NH + h) * T;
    const float* D_bh = Dbuf + (size_t)(b * NH + h) * T;
    const float sl2 = LOG2E / sqrtf((float)D);
    const float scale = 1.0f / sqrtf((float)D);


    auto load_q_tile = [&](int it, int buf) {
        const int q0 = (qt0 + it) * BQ;
        if constexpr (TMA) {
            if (tid == 0) {
                mbar_arrive_expect_bytes(bar0 + 8 * buf, 2 * TILE);
                tma_load_tile64<D>(Qs + buf * TILE, &qkv_map, h * D, q0, b, bar0 + 8 * buf);
                tma_load_tile64<D>(dOs + buf * TILE, &dout_map, h * D, q0, b, bar0 + 8 * buf);
            }
        } else {
            wg_load_rows<D, BQ, NT>(Qs + buf * TILE, qbase, C3, q0, T, tid);
            wg_load_rows<D, BQ, NT>(dOs + buf * TILE, dobase, C, q0, T, tid);
        }
        if (tid < BQ) {
            const int i = q0 + tid;
            const bool ok = i < T;
            cp_async_4(Ls + buf * BQ + tid, lse_bh + (ok ? i : 0), ok);
            cp_async_4(Ds + buf * BQ + tid, D_bh + (ok ? i : 0), ok);
        }
    };
    auto sync_tiles = [&]() {
        cp_async_wait<0>();                                              // my copies landed
        asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");   // ... visible to wgmma
        __syncthreads();                                                 // ... everyone's
    };

    // descriptors: K, V (A, K-major); Q, dO as K-major B (S^T, dP^T) and as N-major B (dK, dV)
    const uint64_t dK = wg_desc(Ks, 16, 1024), dV = wg_desc(Vs, 16, 1024);
    auto kmaj = [&](uint32_t tile) { return wg_desc(tile, 16, 1024); };
    auto nmaj = [&](uint32_t tile) { return wg_desc(tile, BQ * 128, 1024); };

    float dk[D / 2], dv[D / 2];
#pragma unroll
    for (int i = 0; i < D / 2; i++) { dk[i] = 0.f; dv[i] = 0.f; }

    if constexpr (TMA) {
        if (tid == 0) {
            mbar_init(bar0, 1);
            mbar_init(bar0 + 8, 1);
            mbar_init_fence();
            if (ntiles > 0) {          // K and V ride on Q / dO tile 0's phase
                mbar_expect_bytes(bar0, 2 * TILE);
                tma_load_tile64<D>(Ks, &qkv_map, C + h * D, k0, b, bar0);
                tma_load_tile64<D>(Vs, &qkv_map, 2 * C + h * D, k0, b, bar0);
            }
        }
        __syncthreads();               // the barriers are initialised before anyone waits on them
    } else {
        wg_load_rows<D, BK, NT>(Ks, qbase + C, C3, k0, T, tid);
        wg_load_rows<D, BK, NT>(Vs, qbase + 2 * C, C3, k0, T, tid);
    }
    if (ntiles > 0) load_q_tile(0, 0);
    cp_async_commit();
    if constexpr (NARROW_SINK) {
        // a chunk of the sink tile's run whose first query is past the band of the tile's last key:
        // only the sinks (keys < S <= 16) see its queries
        if (chunk >= 0 && kt == 0 && W > 0 && S <= BWD12_SINK_KEYS && qt0 * BQ >= BK - 1 + W) {
            float* pk = partial + (((size_t)bh * nst + kt) * nch + chunk) * 2 * BK * D;
            bwd12_sink_chunk<D>(pk, pk + BK * D, load_q_tile, Ks, Vs, Qs, dOs, Ls, Ds, bar0, qt0, ntiles, T, S,
                                tid, warp, g, tg, sl2, scale);
            return;
        }
    }
    for (int it = 0; it < ntiles; it++) {
        if constexpr (TMA) {
            cp_async_wait<0>();        // my lse / D_i copies of tile it landed
            __syncthreads();           // ... everyone's; everyone is done with tile it-1
        } else {
            sync_tiles();              // tile it landed; everyone is done with tile it-1
        }
        if (it + 1 < ntiles) {         // into the buffers of tile it-1
            load_q_tile(it + 1, (it + 1) & 1);
            cp_async_commit();
        }
        if constexpr (TMA) mbar_wait(bar0 + 8 * (it & 1), (it >> 1) & 1);   // Q, dO (and K, V) of tile it
        const int buf = it & 1, q0 = (qt0 + it) * BQ;
        if (!block_any_allowed(q0, BQ, k0, BK, W, S, T)) continue;   // block-uniform
        const uint32_t Qb = Qs + buf * TILE, dOb = dOs + buf * TILE;
        float st[32], dpt[32];
        wg_issue_abt<D, BK, BQ>(st, dK, kmaj(Qb));     // S^T = K Q^T
        wg_issue_abt<D, BK, BQ>(dpt, dV, kmaj(dOb));   // dP^T = V dO^T
        const float* Lb = Ls + buf * BQ;
        const float* Db = Ds + buf * BQ;
        wg_wait<1>();                  // S^T done, dP^T may still run
        wg_fence_regs(st);
        // P^T (masked on edge tiles): key kr0 + 8r and query qb + 8t + e are a pair iff
        // key <= query < T and (no window, a sink key, or query < key + W)
        const bool full = block_fully_allowed(q0, BQ, k0, BK, W, S, T);
        const int qb = q0 + 2 * tg;
        int lo[2], hi[2];
#pragma unroll
        for (int r = 0; r < 2; r++) {
            const int key = kr0 + 8 * r;
            lo[r] = key - qb;
            hi[r] = T - qb;
            if (W > 0 && key >= S) hi[r] = min(hi[r], key + W - qb);
        }
#pragma unroll
        for (int t = 0; t < 8; t++) {
            const float2 Lv = *reinterpret_cast<const float2*>(Lb + 8 * t + 2 * tg);
            const float L2[2] = {Lv.x * LOG2E, Lv.y * LOG2E};
#pragma unroll
            for (int r = 0; r < 2; r++)
#pragma unroll
                for (int e = 0; e < 2; e++) {
                    const int qq = 8 * t + e;
                    float p = ex2_approx(fmaf(st[4 * t + 2 * r + e], sl2, -L2[e]));
                    if (!full && !(qq >= lo[r] && qq < hi[r])) p = 0.f;
                    st[4 * t + 2 * r + e] = p;
                }
        }
        uint32_t pa[4][4];
        bwd10_pack(pa, st);
        wg_issue_pb<D>(dv, pa, nmaj(dOb));             // dV += P^T dO
        wg_wait<1>();                  // dP^T done, dV may still run
        wg_fence_regs(dpt);
#pragma unroll
        for (int t = 0; t < 8; t++) {
            const float2 Dv = *reinterpret_cast<const float2*>(Db + 8 * t + 2 * tg);
            const float Dq[2] = {Dv.x, Dv.y};
#pragma unroll
            for (int r = 0; r < 2; r++)
#pragma unroll
                for (int e = 0; e < 2; e++)
                {   // P^T back from its bf16 fragments: st dies at the pack, which keeps ptxas from
                    // serializing the wgmma at 3 blocks / SM (C7512)
                    const uint32_t pp = pa[t / 2][2 * (t % 2) + r];
                    const float p = __uint_as_float(e == 0 ? pp << 16 : pp & 0xffff0000u);
                    dpt[4 * t + 2 * r + e] = p * (dpt[4 * t + 2 * r + e] - Dq[e]);
                }
        }
        uint32_t sa[4][4];
        bwd10_pack(sa, dpt);
        wg_issue_pb<D>(dk, sa, nmaj(Qb));              // dK += dS^T Q
        wg_wait<0>();
        wg_fence_regs(dk);
        wg_fence_regs(dv);
    }
    cp_async_wait<0>();
    if (chunk >= 0) {   // a chunk of a sink tile's run: fp32 partials, reduced in a fixed order later
        float* pk = partial + (((size_t)bh * nst + kt) * nch + chunk) * 2 * BK * D;
        float* pv = pk + BK * D;
#pragma unroll
        for (int n = 0; n < D / 8; n++)
#pragma unroll
            for (int r = 0; r < 2; r++) {
                const int row = warp * 16 + g + 8 * r;
                *reinterpret_cast<float2*>(pk + row * D + n * 8 + 2 * tg) = make_float2(dk[4 * n + 2 * r] * scale, dk[4 * n + 2 * r + 1] * scale);
                *reinterpret_cast<float2*>(pv + row * D + n * 8 + 2 * tg) = make_float2(dv[4 * n + 2 * r], dv[4 * n + 2 * r + 1]);
            }
        return;
    }
    bf16* dkbase = dqkv + (size_t)b * T * C3 + C + h * D;
#pragma unroll
    for (int r = 0; r < 2; r++) {
        const int key = kr0 + 8 * r;
        if (key >= T) continue;
#pragma unroll
        for (int n = 0; n < D / 8; n++) {
            *reinterpret_cast<uint32_t*>(dkbase + key * C3 + n * 8 + 2 * tg) =
                pack_bf16x2(dk[4 * n + 2 * r] * scale, dk[4 * n + 2 * r + 1] * scale);
            *reinterpret_cast<uint32_t*>(dkbase + C + key * C3 + n * 8 + 2 * tg) =
                pack_bf16x2(dv[4 * n + 2 * r], dv[4 * n + 2 * r + 1]);
        }
    }
#endif
}

// 10b: dQ. Block per (b, h, 64 queries), longest first; K, V tiles double-buffered. Thread rows
// (queries) r0 = q0 + 16 warp + g (+ 8); accumulator column 8t + 2tg + e is key k0 + 8t + 2tg + e.
template<int D, bool TMA>
__global__ void __launch_bounds__(BWD10_THREADS, bwd10_dq_min_blocks<D>())
attention_backward_dq_kernel10(bf16* dqkv, const bf16* qkv, const bf16* dout, const float* lse,
                               const float* Dbuf, int B, int T, int NH, int W, int S,
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
    __shared__ __align__(8) uint64_t tile_full[3];   // TMA: K / V buffers 0, 1; Q and dO
    const uint32_t bar0 = (uint32_t)__cvta_generic_to_shared(&tile_full[0]), qbar = bar0 + 16;

    const int bh = TMA ? blockIdx.z * NH + blockIdx.y : blockIdx.x, b = bh / NH, h = bh % NH;
    const int qt = TMA ? gridDim.x - 1 - blockIdx.x : gridDim.y - 1 - blockIdx.y;
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane / 4, tg = lane % 4;
    const int q0 = qt * BQ, r0 = q0 + warp * 16 + g;
    const size_t C = (size_t)NH * D, C3 = 3 * C;
    const bf16* qbase = qkv + (size_t)b * T * C3 + h * D;
    const bf16* dobase = dout + (size_t)b * T * C + h * D;
    const float sl2 = LOG2E / sqrtf((float)D);
    const float scale = 1.0f / sqrtf((float)D);

    const int q_last = min(q0 + BQ, T) - 1;
    const KeyTileRange kr = key_tiles_for_queries(q0, q_last, W, S, BK);
    const int ntiles = key_tile_count(kr);
    auto load_kv = [&](int it, int buf) {
        const int k0 = key_tile_at(kr, it) * BK;
        if constexpr (TMA) {
            if (tid == 0) {
                mbar_arrive_expect_bytes(bar0 + 8 * buf, 2 * TILE);
                tma_load_tile64<D>(Ks + buf * TILE, &qkv_map, C + h * D, k0, b, bar0 + 8 * buf);
                tma_load_tile64<D>(Vs + buf * TILE, &qkv_map, 2 * C + h * D, k0, b, bar0 + 8 * buf);
            }
        } else {
            wg_load_rows<D, BK, NT>(Ks + buf * TILE, qbase + C, C3, k0, T, tid);
            wg_load_rows<D, BK, NT>(Vs + buf * TILE, qbase + 2 * C, C3, k0, T, tid);
        }
    };
    auto sync_tiles = [&]() {
        cp_async_wait<0>();
        asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
        __syncthreads();
    };
    const uint64_t dQd = wg_desc(Qs, 16, 1024), dOd = wg_desc(dOs, 16, 1024);
    auto kmaj = [&](uint32_t tile) { return wg_desc(tile, 16, 1024); };
    auto nmaj = [&](uint32_t tile) { return wg_desc(tile, BK * 128, 1024); };

    if constexpr (TMA) {
        if (tid == 0) {
            for (int i = 0; i < 3; i++) mbar_init(bar0 + 8 * i, 1);
            mbar_init_fence();
            mbar_arrive_expect_bytes(qbar, 2 * TILE);
            tma_load_tile64<D>(Qs, &qkv_map, h * D, q0, b, qbar);
            tma_load_tile64<D>(dOs, &dout_map, h * D, q0, b, qbar);
        }
        __syncthreads();               // the barriers are initialised before anyone waits on them
    } else {
        wg_load_rows<D, BQ, NT>(Qs, qbase, C3, q0, T, tid);
        wg_load_rows<D, BQ, NT>(dOs, dobase, C, q0, T, tid);
    }
    if (ntiles > 0) load_kv(0, 0);
    cp_async_commit();
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

    if constexpr (TMA) mbar_wait(qbar, 0);
    for (int it = 0; it < ntiles; it++) {
        if constexpr (TMA) {
            if (it > 0) __syncthreads();   // everyone is done with tile it-1, whose buffers tile it+1 takes
        } else {
            sync_tiles();
        }
        if (it + 1 < ntiles) {
            load_kv(it + 1, (it + 1) & 1);
            cp_async_commit();
        }
        if constexpr (TMA) mbar_wait(bar0 + 8 * (it & 1), (it >> 1) & 1);   // K, V of tile it
        const int buf = it & 1, k0 = key_tile_at(kr, it) * BK;
        const uint32_t Kb = Ks + buf * TILE, Vb = Vs + buf * TILE;
        float s[32], dp[32];
        wg_issue_abt<D, BQ, BK>(s, dQd, kmaj(Kb));    // S = Q K^T
        wg_issue_abt<D, BQ, BK>(dp, dOd, kmaj(Vb));   // dP = dO V^T
        wg_wait<1>();
        wg_fence_regs(s);
        const bool full = block_fully_allowed(q0, BQ, k0, BK, W, S, T);
        const int kb = k0 + 2 * tg, sk = S - kb;
#pragma unroll
        for (int r = 0; r < 2; r++) {
            const int row = r0 + 8 * r;
            const int hi = (row < T) ? row - kb : -1 - BK;
            const int lo = (W > 0) ? row - W + 1 - kb : -BK;
#pragma unroll
            for (int t = 0; t < 8; t++)
#pragma unroll
                for (int e = 0; e < 2; e++) {
                    const int kk = 8 * t + e;
                    float p = ex2_approx(fmaf(s[4 * t + 2 * r + e], sl2, -L2[r]));
                    if (!full && !(kk <= hi && (kk >= lo || kk < sk))) p = 0.f;
                    s[4 * t + 2 * r + e] = p;
                }
        }
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
    }
    bwd10_store_rows<D>(dqkv + (size_t)b * T * C3 + h * D, C3, dq, r0, tg, T, scale);
#endif
}

template<int D, bool TMA, bool NARROW_SINK>
void attention_backward10_launch(bf16* dqkv, float* Dbuf, const bf16* qkv, const bf16* out, const bf16* dout,
                                 const float* lse, int B, int T, int NH, int W, int S) {
    static_assert(D == 64 || (D == 128 && TMA && !NARROW_SINK),
                  "heads of 128 run v13 (v11's TMA path); v10 and v12's 16-key sink chunk are written for 64");
    constexpr int BK = BWD10_ROWS;
    constexpr size_t smem = bwd10_smem<D>();
    static bool configured = false;
    static SideStream side;
    if (!configured) {
        cudaCheck(cudaFuncSetAttribute(attention_backward_dkdv_kernel10<D, TMA, NARROW_SINK>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
        cudaCheck(cudaFuncSetAttribute(attention_backward_dq_kernel10<D, TMA>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
        side = side_stream_create();
        configured = true;
    }
    const int nkt = ceil_div(T, BK);
    const SinkSplit sp = sink_split(T, W, S, BK);   // v6's split of the sink tiles' runs
    const int nst = sp.nst, nch = sp.nch;
    float* partial = nst ? get_sink_partial((size_t)B * NH * nst * nch * 2 * BK * D * sizeof(float)) : nullptr;
    const int nkv = nkt + nst * (nch - 1), nq = ceil_div(T, BWD10_ROWS);
    // v11: a head's blocks side by side, so that neighbours share tiles in the L2 (forward v10)
    const dim3 grid_kv = TMA ? dim3(nkv, NH, B) : dim3(B * NH, nkv);
    const dim3 grid_q = TMA ? dim3(nq, NH, B) : dim3(B * NH, nq);
    const CUtensorMap qkv_map = TMA ? rows_tensor_map(qkv, B, T, 3 * NH * D, BWD10_ROWS) : CUtensorMap{};
    const CUtensorMap dout_map = TMA ? rows_tensor_map(dout, B, T, NH * D, BWD10_ROWS) : CUtensorMap{};

    launch_dot<D>(Dbuf, out, dout, B, T, NH);
    side_stream_fork(side);
    attention_backward_dkdv_kernel10<D, TMA, NARROW_SINK><<<grid_kv, BWD10_THREADS, smem>>>(dqkv, partial, qkv, dout, lse, Dbuf,
                                                                                B, T, NH, W, S, nst, nch, qkv_map, dout_map);
    cudaCheckLaunch();
    if (nst) {
        const size_t n = (size_t)B * NH * nst * 2 * BK * D;
        sink_reduce_kernel<D><<<(unsigned)ceil_div(n, (size_t)256), 256>>>(dqkv, partial, B, T, NH, nst, nch);
        cudaCheckLaunch();
    }
    attention_backward_dq_kernel10<D, TMA><<<grid_q, BWD10_THREADS, smem, side.stream>>>(dqkv, qkv, dout, lse, Dbuf, B, T, NH, W, S,
                                                                                         qkv_map, dout_map);
    cudaCheckLaunch();
    side_stream_join(side);
}
// @copy-end attn-backward-v10
template<int D>
void attention_backward10(bf16* dqkv, float* Dbuf, const bf16* qkv, const bf16* out, const bf16* dout,
                          const float* lse, int B, int T, int NH, int W, int S) {
    attention_backward10_launch<D, false, false>(dqkv, Dbuf, qkv, out, dout, lse, B, T, NH, W, S);
}
// version 11: v10 with TMA loads (Q, dO, K, V tiles: one thread, one copy per tile, an mbarrier per
// buffer; lse and D_i stay on cp.async) and a head's blocks side by side in both grids.
// Predicted (written before measuring): forward v10 gained 1.17-1.27x from the same change; the
// backward spends more of each tile on products and elementwise work: ~1.1x v10.
// Measured (H200, three runs beside v10; results/h200_backward_v12.log is the last): W = 256
// 1.05-1.15x, W = 1024 1.03-1.16x, full causal 1.04-1.15x.
template<int D>
void attention_backward11(bf16* dqkv, float* Dbuf, const bf16* qkv, const bf16* out, const bf16* dout,
                          const float* lse, int B, int T, int NH, int W, int S) {
    attention_backward10_launch<D, true, false>(dqkv, Dbuf, qkv, out, dout, lse, B, T, NH, W, S);
}
// version 12: v11 with the sink tile's chunks past every band done as 16 keys (bwd12_sink_chunk).
// At W = 256, T = 4096 a head's dK/dV pass is ~315 band tiles and 64 sink-tile tiles, 48 of them in
// chunks past the band where 60 of the 64 keys have no pair.
// Predicted (written before measuring): those 48 tiles at ~1/4 of the cost: ~9% less dK/dV work,
// ~1.07x v11 at W = 256 (T >= 4096), ~1.02x at W = 1024, nothing on full rows (no band).
// Measured (H200, results/h200_backward_v12.log and the run before it): W = 256 1.07x (T = 4096),
// 1.03-1.07x (T = 16384), 1.00x (T = 1024: one chunk, nothing narrow); W = 1024 1.01-1.02x; full
// causal runs v11's code path (0.89-1.01x in two runs: noise). Also tried: the dQ pass's sink tile as
// 16 keys (as forward v11): 0.96-1.03x, since dQ runs beside dK/dV on a second stream.
// @copy-begin attn-backward-v12
// backward v12, the programs' backward on sm_90a for heads of 64
template<int D>
void attention_backward12(bf16* dqkv, float* Dbuf, const bf16* qkv, const bf16* out, const bf16* dout,
                          const float* lse, int B, int T, int NH, int W, int S) {
    attention_backward10_launch<D, true, true>(dqkv, Dbuf, qkv, out, dout, lse, B, T, NH, W, S);
}
// @copy-end attn-backward-v12
// version 13: heads of 128 on v11's path (wgmma, TMA), which v10-v12 left to v9 (mma.sync). Each tile
// is D / 64 = 2 boxes of 64 columns (tma_load_tile64; the descriptors already step over column
// blocks), both passes at 2 blocks per SM (6 tiles of 16 KB a block; dK and dV take 128 fp32
// accumulators a thread), no 16-key sink chunk (written for 64). Heads of 64 run v12 unchanged.
// Predicted (written 2026-12-05 without a GPU, before measuring): v9's backward at D = 128 runs ~200
// TFLOP/s (issue 14's table: 232 forward+backward with forward v11 at 418); wgmma with twice the
// product work per exponential as at D = 64, at 8 warps per SM: ~300 TFLOP/s backward, 1.4x v9's
// forward+backward, still ~0.7x cuDNN's (which needs more than one consumer warpgroup per block).
// @copy-begin attn-backward-v13
// backward v13, the programs' backward on sm_90a: v12 for heads of 64, v11's path for heads of 128
template<int D>
void attention_backward13(bf16* dqkv, float* Dbuf, const bf16* qkv, const bf16* out, const bf16* dout,
                          const float* lse, int B, int T, int NH, int W, int S) {
    attention_backward10_launch<D, true, D == 64>(dqkv, Dbuf, qkv, out, dout, lse, B, T, NH, W, S);
}
// @copy-end attn-backward-v13
// ---- end of versions 10 to 13

#ifndef ATTENTION_BACKWARD_NO_MAIN  // attention_general.cu includes this file for its tile functions
// version dispatch
static const int NUM_VERSIONS = 13;
static const char* version_names[NUM_VERSIONS + 1] = {
    "", "v1 naive", "v2 flash fp32", "v3 mma.sync", "v4 mma+2 streams", "v5 +cp.async", "v6 +split sinks",
    "v7 2 m-tiles/warp", "v8 pipelined", "v9 lean v6", "v10 wgmma", "v11 TMA", "v12 narrow sinks", "v13 D=128 too"};

// v10 to v13 need the sm_90a build (wgmma, TMA) and a Hopper GPU, v10 to v12 also D = 64; every other
// version runs everywhere
static bool version_supported(int version, int D) {
    return version < 10 || ((D == 64 || version == 13) && wgmma_available());
}

template<int D>
void attention_backward_d(int version, bf16* dqkv, float* Dbuf, const bf16* qkv, const bf16* out,
                          const bf16* dout, const float* lse, int B, int T, int NH, int W, int S) {
    switch (version) {
        case 1: attention_backward1<D>(dqkv, Dbuf, qkv, out, dout, lse, B, T, NH, W, S); break;
        case 2: attention_backward2<D>(dqkv, Dbuf, qkv, out, dout, lse, B, T, NH, W, S); break;
        case 3: attention_backward_tc<D>(dqkv, Dbuf, qkv, out, dout, lse, B, T, NH, W, S, false, false, false); break;
        case 4: attention_backward_tc<D>(dqkv, Dbuf, qkv, out, dout, lse, B, T, NH, W, S, true, false, false); break;
        case 5: attention_backward_tc<D>(dqkv, Dbuf, qkv, out, dout, lse, B, T, NH, W, S, true, true, false); break;
        case 6: attention_backward_tc<D>(dqkv, Dbuf, qkv, out, dout, lse, B, T, NH, W, S, true, true, true); break;
        case 7: attention_backward7<D>(dqkv, Dbuf, qkv, out, dout, lse, B, T, NH, W, S); break;
        case 8: attention_backward8<D>(dqkv, Dbuf, qkv, out, dout, lse, B, T, NH, W, S); break;
        case 9: attention_backward9<D>(dqkv, Dbuf, qkv, out, dout, lse, B, T, NH, W, S); break;
        case 10:
            if constexpr (D == 64) { attention_backward10<D>(dqkv, Dbuf, qkv, out, dout, lse, B, T, NH, W, S); break; }
            printf("version 10 needs D = 64\n"); exit(EXIT_FAILURE);
        case 11:
            if constexpr (D == 64) { attention_backward11<D>(dqkv, Dbuf, qkv, out, dout, lse, B, T, NH, W, S); break; }
            printf("version 11 needs D = 64\n"); exit(EXIT_FAILURE);
        case 12:
            if constexpr (D == 64) { attention_backward12<D>(dqkv, Dbuf, qkv, out, dout, lse, B, T, NH, W, S); break; }
            printf("version 12 needs D = 64\n"); exit(EXIT_FAILURE);
        case 13: attention_backward13<D>(dqkv, Dbuf, qkv, out, dout, lse, B, T, NH, W, S); break;
        default: printf("invalid version %d\n", version); exit(EXIT_FAILURE);
    }
}
void attention_backward(int version, bf16* dqkv, float* Dbuf, const bf16* qkv, const bf16* out,
                        const bf16* dout, const float* lse, int B, int T, int NH, int D, int W, int S) {
    if (D == 64) attention_backward_d<64>(version, dqkv, Dbuf, qkv, out, dout, lse, B, T, NH, W, S);
    else if (D == 128) attention_backward_d<128>(version, dqkv, Dbuf, qkv, out, dout, lse, B, T, NH, W, S);
    else { printf("unsupported head dim %d\n", D); exit(EXIT_FAILURE); }
}

// ----------------------------------------------------------------------------
// correctness: every version against the CPU reference on small shapes that hit the edge cases.
// out and lse come from the CPU forward (out rounded to bf16, as a GPU forward would store it); the
// GPU and the CPU backward both consume exactly these, so only the backward is being tested.

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
    {1, 2500, 2, 64,  40,   4, "v6 splits the sink tile: 3 chunks"},
    {1, 1030, 2, 64,  40,  70, "v6: 2 sink tiles, one chunk empty"},
    {1, 2200, 1, 128, 100, 70, "v6 at D = 128 (32-query tiles)"},
    {1, 3000, 2, 64, 1000, 16, "v12: 16 sinks as 16 keys, chunk 2 only"},
    {2, 2100, 2, 64,   7,  1, "v12: one sink, chunks 1 and 2 narrow"},
};

static int run_checks(unsigned only_version) {
    int fails = 0;
    printf("\n---- correctness vs CPU reference (double); dqkv NaN-poisoned before every run ----\n");
    printf("pass: bf16 dq, dk, dv each rel err < %.0e, no NaN\n", TOL_BF16);
    printf("%-3s %-4s %-3s %-4s %-4s %-4s %-36s | %-16s | %-10s %-10s %-10s | %s\n",
           "B", "T", "NH", "D", "W", "S", "case", "version", "dq err", "dk err", "dv err", "result");
    for (const Case& cs : check_cases) {
        const int B = cs.B, T = cs.T, NH = cs.NH, D = cs.D, W = cs.W, S = cs.S;
        const size_t C = (size_t)NH * D;
        const size_t n_qkv = (size_t)B * T * 3 * C, n_out = (size_t)B * T * C, n_lse = (size_t)B * NH * T;
        std::vector<float> qkv(n_qkv), out(n_out), dout(n_out), lse(n_lse), dqkv_ref(n_qkv), dqkv_gpu(n_qkv);
        fill_random_qkv(qkv.data(), B, T, NH, D);
        fill_random_bf16(dout.data(), n_out, 1.0f);
        attention_forward_cpu(out.data(), lse.data(), qkv.data(), B, T, NH, D, W, S);
        for (size_t n = 0; n < n_out; n++) out[n] = round_bf16(out[n]);
        attention_backward_cpu(dqkv_ref.data(), qkv.data(), out.data(), dout.data(), lse.data(), B, T, NH, D, W, S);

        bf16 *d_qkv, *d_out, *d_dout, *d_dqkv; float *d_lse, *d_Dbuf;
        cudaCheck(cudaMalloc(&d_qkv, n_qkv * sizeof(bf16)));
        cudaCheck(cudaMalloc(&d_out, n_out * sizeof(bf16)));
        cudaCheck(cudaMalloc(&d_dout, n_out * sizeof(bf16)));
        cudaCheck(cudaMalloc(&d_dqkv, n_qkv * sizeof(bf16)));
        cudaCheck(cudaMalloc(&d_lse, n_lse * sizeof(float)));
        cudaCheck(cudaMalloc(&d_Dbuf, n_lse * sizeof(float)));
        upload_bf16(d_qkv, qkv.data(), n_qkv);
        upload_bf16(d_out, out.data(), n_out);
        upload_bf16(d_dout, dout.data(), n_out);
        cudaCheck(cudaMemcpy(d_lse, lse.data(), n_lse * sizeof(float), cudaMemcpyHostToDevice));
        for (int v = 1; v <= NUM_VERSIONS; v++) {
            if (only_version && !((only_version >> v) & 1u)) continue;
            if (!version_supported(v, D)) {
                printf("%-3d %-4d %-3d %-4d %-4d %-4d %-36s | %-16s | skipped: needs D = 64 and the sm_90a build on a Hopper GPU\n",
                       B, T, NH, D, W, S, cs.why, version_names[v]);
                continue;
            }
            poison(d_dqkv, n_qkv * sizeof(bf16));
            poison(d_Dbuf, n_lse * sizeof(float));
            attention_backward(v, d_dqkv, d_Dbuf, d_qkv, d_out, d_dout, d_lse, B, T, NH, D, W, S);
            cudaCheck(cudaDeviceSynchronize());
            download_bf16(dqkv_gpu.data(), d_dqkv, n_qkv);
            CheckResult cr[3];
            bool ok = true;
            for (int part = 0; part < 3; part++) {   // (B, T, 3, NH, D): part = (index / C) % 3
                cr[part] = rel_error(dqkv_gpu.data(), dqkv_ref.data(), n_qkv, TOL_BF16,
                                     [&](size_t n) { return (int)((n / C) % 3) == part; });
                ok = ok && cr[part].pass;
            }
            printf("%-3d %-4d %-3d %-4d %-4d %-4d %-36s | %-16s | %-10.2e %-10.2e %-10.2e | %s",
                   B, T, NH, D, W, S, cs.why, version_names[v], cr[0].rel, cr[1].rel, cr[2].rel, ok ? "ok" : "FAIL");
            if (!ok) {
                for (int part = 0; part < 3; part++) {
                    if (cr[part].pass) continue;
                    size_t w = cr[part].worst;
                    printf("  [d%c: %zu NaN, worst (b%d t%d h%d d%d) gpu %g ref %g]", "qkv"[part], cr[part].nan_count,
                           (int)(w / (3 * C * T)), (int)(w / (3 * C) % T), (int)(w % C / D), (int)(w % D),
                           dqkv_gpu[w], dqkv_ref[w]);
                }
                fails++;
            }
            printf("\n");
        }
        cudaCheck(cudaFree(d_qkv));
        cudaCheck(cudaFree(d_out));
        cudaCheck(cudaFree(d_dout));
        cudaCheck(cudaFree(d_dqkv));
        cudaCheck(cudaFree(d_lse));
        cudaCheck(cudaFree(d_Dbuf));
    }
    return fails;
}

// ----------------------------------------------------------------------------
// timing on the canonical workload (SPEC §5): bf16, NH = 12, D = 64, B*T = 32768 tokens; and with
// heads of 128 (NH = 6, D = 128), the same tokens and width.
// out/dout are random; lse is set to log(#allowed keys of the row) + 1, which keeps every P in
// (0, 1] like a real forward would (the timing does not depend on the values otherwise).

static void run_timing(unsigned only_version, int NH, int D) {
    const int TOKENS = 32768;
    const int Ts[] = {1024, 4096, 16384};
    const int WS[][2] = {{256, 4}, {1024, 4}, {0, 0}};
    const size_t C = (size_t)NH * D;
    const size_t n_qkv = (size_t)TOKENS * 3 * C, n_out = (size_t)TOKENS * C, n_lse = (size_t)TOKENS * NH;
    const size_t set_bytes = 2 * n_qkv * sizeof(bf16) + 2 * n_out * sizeof(bf16) + 2 * n_lse * sizeof(float);
    const int n_sets = sets_to_defeat_l2(set_bytes);
    std::vector<bf16*> qkv(n_sets), out(n_sets), dout(n_sets), dqkv(n_sets);
    std::vector<float*> lse(n_sets), Dbuf(n_sets);
    for (int s = 0; s < n_sets; s++) {
        cudaCheck(cudaMalloc(&qkv[s], n_qkv * sizeof(bf16)));
        cudaCheck(cudaMalloc(&dqkv[s], n_qkv * sizeof(bf16)));
        cudaCheck(cudaMalloc(&out[s], n_out * sizeof(bf16)));
        cudaCheck(cudaMalloc(&dout[s], n_out * sizeof(bf16)));
        cudaCheck(cudaMalloc(&lse[s], n_lse * sizeof(float)));
        cudaCheck(cudaMalloc(&Dbuf[s], n_lse * sizeof(float)));
        init_random_bf16_kernel<<<ceil_div(n_qkv, (size_t)256), 256>>>(qkv[s], n_qkv, 1000 + s, 1.5f);
        cudaCheckLaunch();
        init_random_bf16_kernel<<<ceil_div(n_out, (size_t)256), 256>>>(out[s], n_out, 2000 + s, 0.5f);
        cudaCheckLaunch();
        init_random_bf16_kernel<<<ceil_div(n_out, (size_t)256), 256>>>(dout[s], n_out, 3000 + s, 1.0f);
        cudaCheckLaunch();
    }
    cudaCheck(cudaDeviceSynchronize());

    printf("\n---- timing: bf16, NH=%d, D=%d, B*T=%d tokens, %d input sets of %.0f MB rotated (L2 defeated) ----\n",
           NH, D, TOKENS, n_sets, set_bytes / 1e6);
    printf("TFLOP/s on allowed pairs (2.5 x 4*P*D); GB/s on compulsory bytes (qkv, out, dout, lse in; dqkv out);\n");
    printf("%%TC = of %.0f TFLOP/s, %%BW = of %.0f GB/s (the H200's limits, SPEC §5); median of the runs\n",
           H200_TFLOPS, H200_GBPS);
    printf("%-3s %-6s %-5s %-3s | %-16s | %-9s %-8s %-8s %-6s %-6s | %s\n",
           "B", "T", "W", "S", "version", "ms", "TFLOP/s", "GB/s", "%TC", "%BW", "note");
    double naive_tflops = -1.0;
    for (int T : Ts) {
        const int B = TOKENS / T;
        for (const auto& ws : WS) {
            const int W = ws[0], S = ws[1];
            // lse = log(#allowed keys) + 1 for every row (same for every batch/head)
            {
                std::vector<float> row_lse(T), h_lse(n_lse);
                for (int i = 0; i < T; i++) {
                    int cnt = 0;
                    int band = (W == 0) ? i + 1 : std::min(i + 1, W);
                    int extra = (W == 0) ? 0 : std::max(0, std::min(S, i - W + 1));
                    cnt = band + extra;
                    row_lse[i] = logf((float)cnt) + 1.0f;
                }
                for (size_t n = 0; n < n_lse; n++) h_lse[n] = row_lse[n % T];   // (B, NH, T)
                for (int s = 0; s < n_sets; s++)
                    cudaCheck(cudaMemcpy(lse[s], h_lse.data(), n_lse * sizeof(float), cudaMemcpyHostToDevice));
            }
            const double flops = attention_bwd_flops(B, NH, T, D, W, S);
            const double bytes = attention_bwd_bytes(B, NH, T, D);
            for (int v = 1; v <= NUM_VERSIONS; v++) {
                if (only_version && !((only_version >> v) & 1u)) continue;
                if (!version_supported(v, D)) {
                    printf("%-3d %-6d %-5d %-3d | %-16s | skipped: needs the sm_90a build on a Hopper GPU\n",
                           B, T, W, S, version_names[v]);
                    continue;
                }
                auto launch = [&](int s) {
                    attention_backward(v, dqkv[s], Dbuf[s], qkv[s], out[s], dout[s], lse[s], B, T, NH, D, W, S);
                };
                int warmup = 3, reps = 25;
                char note[64] = "";
                if (v == 1) {
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
    }
    for (int s = 0; s < n_sets; s++) {
        cudaCheck(cudaFree(qkv[s])); cudaCheck(cudaFree(dqkv[s]));
        cudaCheck(cudaFree(out[s])); cudaCheck(cudaFree(dout[s]));
        cudaCheck(cudaFree(lse[s])); cudaCheck(cudaFree(Dbuf[s]));
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
    if (timing) {
        run_timing(only_version, 12, 64);
        // heads of 128: the best mma.sync version against the wgmma one, unless versions were named
        run_timing(only_version ? only_version : (1u << 9) | (1u << 13), 6, 128);
    }

    if (fails) {
        printf("\n%d CHECK(S) FAILED\n", fails);
        return EXIT_FAILURE;
    }
    printf("\nall checks passed\n");
    return 0;
}
#endif
