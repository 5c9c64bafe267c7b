/*
LayerNorm backward, the trainers' most memory-bound kernel after the classifier: per row it reads
dout, the input and the running input gradient and writes that gradient back (4 x C x 2 bytes),
and it sums the weight and bias gradients over all rows in a fixed order (deterministic).

Shapes: dout, inp, dinp (rows, C) bf16; weight (C) bf16; mean, rstd (rows) float32 (saved by the
forward); dweight, dbias (C) float32, accumulated (+=) like every gradient of the trainers; dinp is
accumulated too (the residual stream's gradient arrives first). C a multiple of 8, at most 2048.
Optionally (v1, v4, v5) dinp_sum (C) += the column sums of the updated dinp: in a GPT block that
is the residual stream's gradient, whose column sums are the bias gradient of the projection that
wrote the residual (the trainers save a pass over it per projection).

version 1: one warp per row for dinp; one thread per column walks every row for dweight / dbias.
           Obviously right; the column walk reads each row once per 128 columns, slowly.
version 2: the trainers' kernel before this story (v4 replaced it): a warp owns 16 rows, lane l the channel chunks
           [8 (l + 32k), +8); the row, the weights and the warp's dweight / dbias sums stay in
           registers (158 at C = 768: 3 blocks per SM); blocks' partial sums added by a second kernel
           in block order. 32768 rows make 512 blocks: 1.3 waves of 396 resident blocks.
version 3: v2's kernel on a grid of exactly one wave (rows per warp from the occupancy), so no SM
           idles through a short last wave.
version 4: the running dweight / dbias sums move from registers to shared memory, laid out
           [sum][chunk][half][lane] so each lane's 16-byte accesses are conflict-free: 96
           registers at C = 768, 5 blocks per SM instead of 3 to hide the loads' latency; one wave.
           The trainers' version (1.6x v2 at C = 768).
version 5: v4 and the next row's loads issued before this row's arithmetic (registers double
           buffered, up to C = 1024; wider rows spill), so each warp keeps a row in flight while it
           computes. Measured: 0.91-1.02x v4 at C = 768, 0.9x at C = 1024: the doubled registers
           cost v4's occupancy.

./layernorm_backward              checks every version against a CPU reference, then times them
./layernorm_backward --check-only the checks
*/
#include "common.h"

// @copy-begin ln-backward
// ----------------------------------------------------------------------------
// LayerNorm backward (dev/cuda/layernorm_backward.cu version 4; PREFETCH is version 5)

static const int LN_WARPS = 4, LN_MAX_CHUNKS = 8;   // 4 warps per block; C <= 256 * LN_MAX_CHUNKS

// 8 bf16 in one 16-byte load or store; a warp's sum (the trainers' other kernels use both too)
union Pack8 { uint4 u; bf16 x[8]; };

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) { v += __shfl_xor_sync(0xffffffff, v, o); }
    return v;
}

// Lane l of a warp owns the channel chunks [8 (l + 32k), +8), k < CHUNKS = ceil(C / 256), read with
// 16-byte loads. A warp takes rows_per_warp consecutive rows. With PREFETCH (v5), while it computes
// one row the next row's dout, input and input gradient are already loading (the *_next registers;
// past C = 1024 they would spill, so wider rows load as they go).
// The warp's running dweight and dbias sums (and with sum_dinp the updated dinp's) live in shared
// memory as float4s indexed [sum][chunk][half][lane]: a lane only ever touches its own entries (no
// synchronisation), and a warp's 16-byte accesses cover 512 contiguous bytes (no bank conflicts). At
// the end the block adds its warps' sums in warp order into partial (blocks, nsum C): dweight, dbias
// and the dinp sums, nsum = 2 or 3.
// Without the prefetch (v4), up to C = 768 the registers are capped at 96 so that five blocks fit an
// SM (nvcc 13.0: 8 bytes spill since the third sum; the prefetch needs 167-199 registers, 2-3 blocks).
template <int CHUNKS, bool PREFETCH>
constexpr int ln_backward_min_blocks() { return PREFETCH ? 1 : CHUNKS <= 3 ? 5 : CHUNKS == 4 ? 4 : 1; }

template <int CHUNKS, bool PREFETCH>
__global__ void __launch_bounds__(LN_WARPS * 32, (ln_backward_min_blocks<CHUNKS, PREFETCH>()))
layernorm_backward_kernel(bf16* dinp, float* partial, const bf16* dout, const bf16* inp, const bf16* weight,
                          const float* mean, const float* rstd, int rows, int C, int rows_per_warp, bool sum_dinp) {
    extern __shared__ float4 ln_acc[];  // (LN_WARPS, 3, CHUNKS, 2, 32) float4
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    float4* my = ln_acc + (size_t)warp * 3 * CHUNKS * 2 * 32;
    Pack8 w[CHUNKS];
    for (int k = 0; k < CHUNKS; k++) {
        int c0 = (lane + 32 * k) * 8;
        if (c0 < C) { w[k].u = *(const uint4*)(weight + c0); }
    }
    for (int e = lane; e < 3 * CHUNKS * 2 * 32; e += 32) { my[e] = make_float4(0.0f, 0.0f, 0.0f, 0.0f); }
    int row0 = (blockIdx.x * LN_WARPS + warp) * rows_per_warp;
    int row_end = min(rows, row0 + rows_per_warp);
    Pack8 g[CHUNKS], x[CHUNKS], d[CHUNKS];
    auto load_row = [&](int row, Pack8* gr, Pack8* xr, Pack8* dr) {
        for (int k = 0; k < CHUNKS; k++) {
            int c0 = (lane + 32 * k) * 8;
            if (c0 >= C) { continue; }
            gr[k].u = *(const uint4*)(dout + (size_t)row * C + c0);
            xr[k].u = *(const uint4*)(inp + (size_t)row * C + c0);
            dr[k].u = *(const uint4*)(dinp + (size_t)row * C + c0);
        }
    };
    if (PREFETCH && row0 < row_end) { load_row(row0, g, x, d); }
    for (int row = row0; row < row_end; row++) {
        Pack8 g_next[CHUNKS], x_next[CHUNKS], d_next[CHUNKS];
        if (PREFETCH && row + 1 < row_end) { load_row(row + 1, g_next, x_next, d_next); }
        if (!PREFETCH) { load_row(row, g, x, d); }
        float m = mean[row], r = rstd[row];
        float dnorm_mean = 0.0f, dnorm_norm_mean = 0.0f;
        for (int k = 0; k < CHUNKS; k++) {
            if ((lane + 32 * k) * 8 >= C) { continue; }
            for (int i = 0; i < 8; i++) {
                float dn = __bfloat162float(w[k].x[i]) * __bfloat162float(g[k].x[i]);
                dnorm_mean += dn;
                dnorm_norm_mean += dn * (__bfloat162float(x[k].x[i]) - m) * r;
            }
        }
        dnorm_mean = warp_sum(dnorm_mean) / C;
        dnorm_norm_mean = warp_sum(dnorm_norm_mean) / C;
        for (int k = 0; k < CHUNKS; k++) {
            int c0 = (lane + 32 * k) * 8;
            if (c0 >= C) { continue; }
            float4* dw = my + (0 * CHUNKS + k) * 2 * 32 + lane;   // halves at +0 and +32
            float4* db = my + (1 * CHUNKS + k) * 2 * 32 + lane;
            float4 dw_lo = dw[0], dw_hi = dw[32], db_lo = db[0], db_hi = db[32];
            float* dwf[2] = {&dw_lo.x, &dw_hi.x};
            float* dbf[2] = {&db_lo.x, &db_hi.x};
            for (int i = 0; i < 8; i++) {
                float gk = __bfloat162float(g[k].x[i]);
                float n = (__bfloat162float(x[k].x[i]) - m) * r;
                float dn = __bfloat162float(w[k].x[i]) * gk;
                dwf[i / 4][i % 4] += n * gk;
                dbf[i / 4][i % 4] += gk;
                d[k].x[i] = __float2bfloat16(__bfloat162float(d[k].x[i]) + r * (dn - dnorm_mean - n * dnorm_norm_mean));
            }
            dw[0] = dw_lo; dw[32] = dw_hi; db[0] = db_lo; db[32] = db_hi;
            *(uint4*)(dinp + (size_t)row * C + c0) = d[k].u;
            if (sum_dinp) {  // the rounded values, as the next matmul reads them
                float4* ds = my + (2 * CHUNKS + k) * 2 * 32 + lane;
                float4 ds_lo = ds[0], ds_hi = ds[32];
                float* dsf[2] = {&ds_lo.x, &ds_hi.x};
                for (int i = 0; i < 8; i++) { dsf[i / 4][i % 4] += __bfloat162float(d[k].x[i]); }
                ds[0] = ds_lo; ds[32] = ds_hi;
            }
        }
        if (PREFETCH) {
            for (int k = 0; k < CHUNKS; k++) { g[k] = g_next[k]; x[k] = x_next[k]; d[k] = d_next[k]; }
        }
    }
    __syncthreads();
    const float* accf = (const float*)ln_acc;
    const int nsum = sum_dinp ? 3 : 2;
    for (int c = threadIdx.x; c < nsum * C; c += blockDim.x) {
        int sum = c / C, col = c % C;                  // which sum, which channel
        int chunk = col / 8, i = col % 8;              // chunk = lane + 32 k
        size_t at = ((size_t)((sum * CHUNKS + chunk / 32) * 2 + i / 4) * 32 + chunk % 32) * 4 + i % 4;
        float s = 0.0f;
        for (int v = 0; v < LN_WARPS; v++) { s += accf[(size_t)v * 3 * CHUNKS * 2 * 32 * 4 + at]; }
        partial[(size_t)blockIdx.x * nsum * C + c] = s;
    }
}

// dweight, dbias (C each) and dinp_sum (C, when not NULL) += the column sums of partial (blocks,
// nsum C): 32 columns per block, its 8 thread rows take every 8th partial row, then thread row 0
// adds the 8 in order
__global__ void layernorm_backward_finish_kernel(float* dweight, float* dbias, float* dinp_sum, const float* partial,
                                                 int blocks, int C) {
    __shared__ float red[8][32];
    const int nsum = dinp_sum ? 3 : 2;
    int c = blockIdx.x * 32 + threadIdx.x;
    float s = 0.0f;
    if (c < nsum * C) {
        for (int k = threadIdx.y; k < blocks; k += 8) { s += partial[(size_t)k * nsum * C + c]; }
    }
    red[threadIdx.y][threadIdx.x] = s;
    __syncthreads();
    if (threadIdx.y != 0 || c >= nsum * C) { return; }
    float sum = 0.0f;
    for (int y = 0; y < 8; y++) { sum += red[y][threadIdx.x]; }
    float* out = c < C ? dweight : c < 2 * C ? dbias : dinp_sum;
    out[c % C] += sum;
}

typedef void (*ln_backward_kernel_t)(bf16*, float*, const bf16*, const bf16*, const bf16*, const float*,
                                     const float*, int, int, int, bool);
static ln_backward_kernel_t ln_backward_kernel_for(int C) {
    switch (ceil_div(C, 256)) {
        case 1: return layernorm_backward_kernel<1, false>;
        case 2: return layernorm_backward_kernel<2, false>;
        case 3: return layernorm_backward_kernel<3, false>;
        case 4: return layernorm_backward_kernel<4, false>;
        case 5: return layernorm_backward_kernel<5, false>;
        case 6: return layernorm_backward_kernel<6, false>;
        case 7: return layernorm_backward_kernel<7, false>;
        default: return layernorm_backward_kernel<8, false>;
    }
}
static size_t ln_backward_smem(int C) { return (size_t)LN_WARPS * 3 * ceil_div(C, 256) * 2 * 32 * sizeof(float4); }

// blocks of LN_WARPS warps of `kernel` resident on the whole GPU at once with smem bytes of dynamic
// shared memory (the kernel opted in to that much)
static int ln_resident_blocks(const void* kernel, size_t smem) {
    cudaCheck(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    int dev = 0, sms = 0, per_sm = 0;
    cudaCheck(cudaGetDevice(&dev));
    cudaCheck(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
    cudaCheck(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, LN_WARPS * 32, smem));
    if (per_sm < 1) { fprintf(stderr, "layernorm backward: no block fits an SM with %zu bytes of shared memory\n", smem); exit(EXIT_FAILURE); }
    return sms * per_sm;
}

// The grid is one wave: as many blocks as fit on the GPU at once (fewer for few rows), each warp
// taking an equal run of rows. Blocks (and so the partial sums' order) depend only on rows, C and
// the GPU: the same bits run to run on one GPU.
struct LnBackwardGrid { int blocks, rows_per_warp; };
static LnBackwardGrid ln_backward_grid(ln_backward_kernel_t kernel, int rows, int C) {
    static ln_backward_kernel_t cached_kernel = NULL;
    static int cached_slots = 0;  // resident blocks of that kernel (its smem depends on C's chunks only)
    if (kernel != cached_kernel) {
        cached_slots = ln_resident_blocks((const void*)kernel, ln_backward_smem(C));
        cached_kernel = kernel;
    }
    LnBackwardGrid grid;
    grid.rows_per_warp = ceil_div(rows, cached_slots * LN_WARPS);
    grid.blocks = ceil_div(rows, LN_WARPS * grid.rows_per_warp);
    return grid;
}

static void layernorm_backward_launch(ln_backward_kernel_t kernel, bf16* dinp, float* dweight, float* dbias,
                                      float* dinp_sum, float* partial, const bf16* dout, const bf16* inp,
                                      const bf16* weight, const float* mean, const float* rstd, int rows, int C) {
    if (C % 8 != 0 || C > 256 * LN_MAX_CHUNKS) {
        fprintf(stderr, "layernorm backward: C=%d, expected a multiple of 8 up to %d\n", C, 256 * LN_MAX_CHUNKS);
        exit(EXIT_FAILURE);
    }
    LnBackwardGrid grid = ln_backward_grid(kernel, rows, C);
    kernel<<<grid.blocks, LN_WARPS * 32, ln_backward_smem(C)>>>(dinp, partial, dout, inp, weight, mean, rstd,
                                                                rows, C, grid.rows_per_warp, dinp_sum != NULL);
    cudaCheckLaunch();
    const int nsum = dinp_sum ? 3 : 2;
    layernorm_backward_finish_kernel<<<ceil_div(nsum * C, 32), dim3(32, 8)>>>(dweight, dbias, dinp_sum, partial,
                                                                               grid.blocks, C);
    cudaCheckLaunch();
}

// dinp (rows, C) += the input gradient; dweight, dbias (C) += their gradients; dinp_sum (C), unless
// NULL, += the column sums of the updated dinp. partial: scratch of at least
// layernorm_backward_partial_floats(rows, C) floats.
static size_t layernorm_backward_partial_floats(int rows, int C) {
    return (size_t)ln_backward_grid(ln_backward_kernel_for(C), rows, C).blocks * 3 * C;
}
static void layernorm_backward(bf16* dinp, float* dweight, float* dbias, float* dinp_sum, float* partial,
                               const bf16* dout, const bf16* inp, const bf16* weight, const float* mean,
                               const float* rstd, int rows, int C) {
    layernorm_backward_launch(ln_backward_kernel_for(C), dinp, dweight, dbias, dinp_sum, partial, dout, inp, weight,
                              mean, rstd, rows, C);
}
// @copy-end ln-backward

// ----------------------------------------------------------------------------
// version 1: one warp per row for dinp, one thread per column for dweight / dbias

__global__ void layernorm_backward1_dinp_kernel(bf16* dinp, const bf16* dout, const bf16* inp, const bf16* weight,
                                                const float* mean, const float* rstd, int rows, int C) {
    int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= rows) { return; }
    const bf16* g = dout + (size_t)row * C;
    const bf16* x = inp + (size_t)row * C;
    float m = mean[row], r = rstd[row];
    float a = 0.0f, b = 0.0f;
    for (int c = lane; c < C; c += 32) {
        float dn = __bfloat162float(weight[c]) * __bfloat162float(g[c]);
        a += dn;
        b += dn * (__bfloat162float(x[c]) - m) * r;
    }
    a = warp_sum(a) / C;
    b = warp_sum(b) / C;
    for (int c = lane; c < C; c += 32) {
        float n = (__bfloat162float(x[c]) - m) * r;
        float dn = __bfloat162float(weight[c]) * __bfloat162float(g[c]);
        size_t at = (size_t)row * C + c;
        dinp[at] = __float2bfloat16(__bfloat162float(dinp[at]) + r * (dn - a - n * b));
    }
}

// after the dinp kernel: its column sums come from the updated dinp
__global__ void layernorm_backward1_params_kernel(float* dweight, float* dbias, float* dinp_sum, const bf16* dinp,
                                                  const bf16* dout, const bf16* inp, const float* mean,
                                                  const float* rstd, int rows, int C) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) { return; }
    float sw = 0.0f, sb = 0.0f, sd = 0.0f;
    for (int row = 0; row < rows; row++) {
        float gk = __bfloat162float(dout[(size_t)row * C + c]);
        sw += (__bfloat162float(inp[(size_t)row * C + c]) - mean[row]) * rstd[row] * gk;
        sb += gk;
        sd += __bfloat162float(dinp[(size_t)row * C + c]);
    }
    dweight[c] += sw;
    dbias[c] += sb;
    if (dinp_sum) { dinp_sum[c] += sd; }
}

static void layernorm_backward1(bf16* dinp, float* dweight, float* dbias, float* dinp_sum, float*, const bf16* dout,
                                const bf16* inp, const bf16* weight, const float* mean, const float* rstd, int rows, int C) {
    layernorm_backward1_dinp_kernel<<<ceil_div(rows, 8), 256>>>(dinp, dout, inp, weight, mean, rstd, rows, C);
    cudaCheckLaunch();
    layernorm_backward1_params_kernel<<<ceil_div(C, 128), 128>>>(dweight, dbias, dinp_sum, dinp, dout, inp, mean, rstd, rows, C);
    cudaCheckLaunch();
}

// ----------------------------------------------------------------------------
// versions 2 and 3: the row and the warp's dweight / dbias sums in registers

static const int LN2_ROWS_PER_WARP = 16;

template <int CHUNKS>
__global__ void __launch_bounds__(LN_WARPS * 32)
layernorm_backward2_kernel(bf16* dinp, float* partial, const bf16* dout, const bf16* inp, const bf16* weight,
                           const float* mean, const float* rstd, int rows, int C, int rows_per_warp) {
    extern __shared__ float acc[];  // (LN_WARPS, 2C): each warp's dweight, then dbias
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    Pack8 w[CHUNKS];
    float dw[CHUNKS][8], db[CHUNKS][8];
    for (int k = 0; k < CHUNKS; k++) {
        int c0 = (lane + 32 * k) * 8;
        if (c0 < C) { w[k].u = *(const uint4*)(weight + c0); }
        for (int i = 0; i < 8; i++) { dw[k][i] = 0.0f; db[k][i] = 0.0f; }
    }
    int row0 = (blockIdx.x * LN_WARPS + warp) * rows_per_warp;
    for (int row = row0; row < min(rows, row0 + rows_per_warp); row++) {
        const bf16* dy = dout + (size_t)row * C;
        const bf16* x = inp + (size_t)row * C;
        bf16* dx = dinp + (size_t)row * C;
        float m = mean[row], r = rstd[row];
        Pack8 g[CHUNKS], xi[CHUNKS], d[CHUNKS];
        float dnorm_mean = 0.0f, dnorm_norm_mean = 0.0f;
        for (int k = 0; k < CHUNKS; k++) {
            int c0 = (lane + 32 * k) * 8;
            if (c0 >= C) { continue; }
            g[k].u = *(const uint4*)(dy + c0);
            xi[k].u = *(const uint4*)(x + c0);
            d[k].u = *(const uint4*)(dx + c0);
            for (int i = 0; i < 8; i++) {
                float dn = __bfloat162float(w[k].x[i]) * __bfloat162float(g[k].x[i]);
                dnorm_mean += dn;
                dnorm_norm_mean += dn * (__bfloat162float(xi[k].x[i]) - m) * r;
            }
        }
        dnorm_mean = warp_sum(dnorm_mean) / C;
        dnorm_norm_mean = warp_sum(dnorm_norm_mean) / C;
        for (int k = 0; k < CHUNKS; k++) {
            int c0 = (lane + 32 * k) * 8;
            if (c0 >= C) { continue; }
            for (int i = 0; i < 8; i++) {
                float gk = __bfloat162float(g[k].x[i]);
                float n = (__bfloat162float(xi[k].x[i]) - m) * r;
                float dn = __bfloat162float(w[k].x[i]) * gk;
                dw[k][i] += n * gk;
                db[k][i] += gk;
                d[k].x[i] = __float2bfloat16(__bfloat162float(d[k].x[i]) + r * (dn - dnorm_mean - n * dnorm_norm_mean));
            }
            *(uint4*)(dx + c0) = d[k].u;
        }
    }
    float* my = acc + (size_t)warp * 2 * C;
    for (int k = 0; k < CHUNKS; k++) {
        int c0 = (lane + 32 * k) * 8;
        if (c0 >= C) { continue; }
        for (int i = 0; i < 8; i++) { my[c0 + i] = dw[k][i]; my[C + c0 + i] = db[k][i]; }
    }
    __syncthreads();
    for (int c = threadIdx.x; c < 2 * C; c += blockDim.x) {
        float sum = 0.0f;
        for (int v = 0; v < LN_WARPS; v++) { sum += acc[(size_t)v * 2 * C + c]; }
        partial[(size_t)blockIdx.x * 2 * C + c] = sum;
    }
}

typedef void (*ln_backward2_kernel_t)(bf16*, float*, const bf16*, const bf16*, const bf16*, const float*,
                                      const float*, int, int, int);
static ln_backward2_kernel_t ln_backward2_kernel_for(int C) {
    switch (ceil_div(C, 256)) {
        case 1: return layernorm_backward2_kernel<1>;
        case 2: return layernorm_backward2_kernel<2>;
        case 3: return layernorm_backward2_kernel<3>;
        case 4: return layernorm_backward2_kernel<4>;
        case 5: return layernorm_backward2_kernel<5>;
        case 6: return layernorm_backward2_kernel<6>;
        case 7: return layernorm_backward2_kernel<7>;
        default: return layernorm_backward2_kernel<8>;
    }
}

// one_wave false: v2's 16 rows per warp; true: a grid of one wave (v3). The attribute and occupancy
// queries run once per kernel, outside the timed launches (as v4's ln_backward_grid does).
static void layernorm_backward2or3(bool one_wave, bf16* dinp, float* dweight, float* dbias, float* partial,
                                   const bf16* dout, const bf16* inp, const bf16* weight, const float* mean,
                                   const float* rstd, int rows, int C) {
    ln_backward2_kernel_t kernel = ln_backward2_kernel_for(C);
    size_t smem = (size_t)LN_WARPS * 2 * C * sizeof(float);
    static ln_backward2_kernel_t cached_kernel = NULL;
    static int cached_slots = 0;  // resident blocks of that kernel on the whole GPU
    if (kernel != cached_kernel) {
        size_t smem_max = (size_t)LN_WARPS * 2 * 256 * ceil_div(C, 256) * sizeof(float);  // any C of this kernel
        cached_slots = ln_resident_blocks((const void*)kernel, smem_max);
        cached_kernel = kernel;
    }
    int rows_per_warp = one_wave ? ceil_div(rows, cached_slots * LN_WARPS) : LN2_ROWS_PER_WARP;
    int blocks = ceil_div(rows, LN_WARPS * rows_per_warp);
    kernel<<<blocks, LN_WARPS * 32, smem>>>(dinp, partial, dout, inp, weight, mean, rstd, rows, C, rows_per_warp);
    cudaCheckLaunch();
    layernorm_backward_finish_kernel<<<ceil_div(2 * C, 32), dim3(32, 8)>>>(dweight, dbias, NULL, partial, blocks, C);
    cudaCheckLaunch();
}
static void layernorm_backward2(bf16* dinp, float* dweight, float* dbias, float*, float* partial, const bf16* dout, const bf16* inp,
                                const bf16* weight, const float* mean, const float* rstd, int rows, int C) {
    layernorm_backward2or3(false, dinp, dweight, dbias, partial, dout, inp, weight, mean, rstd, rows, C);
}
static void layernorm_backward3(bf16* dinp, float* dweight, float* dbias, float*, float* partial, const bf16* dout, const bf16* inp,
                                const bf16* weight, const float* mean, const float* rstd, int rows, int C) {
    layernorm_backward2or3(true, dinp, dweight, dbias, partial, dout, inp, weight, mean, rstd, rows, C);
}

// ----------------------------------------------------------------------------
// version 5: the trainers' kernel (v4) with the next-row prefetch, up to C = 1024 (four chunks per
// lane); wider rows would spill, so there it is v4

static ln_backward_kernel_t ln_backward5_kernel_for(int C) {
    switch (ceil_div(C, 256)) {
        case 1: return layernorm_backward_kernel<1, true>;
        case 2: return layernorm_backward_kernel<2, true>;
        case 3: return layernorm_backward_kernel<3, true>;
        case 4: return layernorm_backward_kernel<4, true>;
        default: return ln_backward_kernel_for(C);
    }
}
static void layernorm_backward5(bf16* dinp, float* dweight, float* dbias, float* dinp_sum, float* partial, const bf16* dout,
                                const bf16* inp, const bf16* weight, const float* mean, const float* rstd, int rows, int C) {
    layernorm_backward_launch(ln_backward5_kernel_for(C), dinp, dweight, dbias, dinp_sum, partial, dout, inp, weight,
                              mean, rstd, rows, C);
}

// ----------------------------------------------------------------------------
// CPU reference (double sums)

static void layernorm_backward_cpu(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                                   const float* weight, const float* mean, const float* rstd, int rows, int C) {
    std::vector<double> dw(C, 0.0), db(C, 0.0);
    for (int row = 0; row < rows; row++) {
        const float* g = dout + (size_t)row * C;
        const float* x = inp + (size_t)row * C;
        double a = 0.0, b = 0.0;
        for (int c = 0; c < C; c++) {
            double n = ((double)x[c] - mean[row]) * rstd[row];
            double dn = (double)weight[c] * g[c];
            a += dn; b += dn * n;
            dw[c] += n * g[c]; db[c] += g[c];
        }
        a /= C; b /= C;
        for (int c = 0; c < C; c++) {
            double n = ((double)x[c] - mean[row]) * rstd[row];
            double dn = (double)weight[c] * g[c];
            dinp[(size_t)row * C + c] += (float)(rstd[row] * (dn - a - n * b));
        }
    }
    for (int c = 0; c < C; c++) { dweight[c] += (float)dw[c]; dbias[c] += (float)db[c]; }
}

// ----------------------------------------------------------------------------

typedef void (*ln_backward_fn)(bf16*, float*, float*, float*, float*, const bf16*, const bf16*, const bf16*,
                               const float*, const float*, int, int);
struct Version { const char* name; ln_backward_fn fn; bool sums_dinp; };
static const Version versions[] = {
    {"v1 naive", layernorm_backward1, true},
    {"v2 registers, 16 rows/warp", layernorm_backward2, false},
    {"v3 v2 on one wave", layernorm_backward3, false},
    {"v4 sums in smem, one wave", layernorm_backward, true},
    {"v5 v4 + next-row prefetch", layernorm_backward5, true},
};
static const int NUM_VERSIONS = sizeof(versions) / sizeof(versions[0]);

// the forward's statistics, as the trainers save them
static void mean_rstd_cpu(float* mean, float* rstd, const float* inp, int rows, int C) {
    for (int row = 0; row < rows; row++) {
        double s = 0.0, v = 0.0;
        for (int c = 0; c < C; c++) { s += inp[(size_t)row * C + c]; }
        double m = s / C;
        for (int c = 0; c < C; c++) { double d = inp[(size_t)row * C + c] - m; v += d * d; }
        mean[row] = (float)m;
        rstd[row] = (float)(1.0 / sqrt(v / C + 1e-5));
    }
}

int main(int argc, char** argv) {
    bool check_only = argc > 1 && strcmp(argv[1], "--check-only") == 0;
    print_device();
    struct Shape { int rows, C; const char* why; };
    const Shape shapes[] = {
        {1000, 768, "GPT-2 small width, rows not a multiple of anything"},
        {3, 256, "fewer rows than a block's warps"},
        {777, 200, "C = 200: lanes past C idle (one chunk)"},
        {513, 1544, "C = 1544: seven chunks, the last partial"},
        {300, 2048, "C = 2048: the widest"},
        {20000, 512, "more rows than one wave's warps"},
    };
    int failures = 0;
    printf("%-28s %-52s | %-9s %-9s %-9s %-9s | result\n", "version", "shape", "dinp", "dweight", "dbias", "sum dinp");
    for (const Shape& s : shapes) {
        int rows = s.rows, C = s.C;
        size_t n = (size_t)rows * C;
        std::vector<float> dout(n), inp(n), dinp0(n), weight(C), dweight0(C), dbias0(C), dsum0(C), mean(rows), rstd(rows);
        fill_random_bf16(dout.data(), n, 1.0f);
        fill_random_bf16(inp.data(), n, 2.0f);
        fill_random_bf16(dinp0.data(), n, 0.1f);   // the gradient already there: small, so the check sees ours
        fill_random_bf16(weight.data(), C, 1.0f);
        fill_random_bf16(dweight0.data(), C, 1.0f);
        fill_random_bf16(dbias0.data(), C, 1.0f);
        fill_random_bf16(dsum0.data(), C, 1.0f);
        for (auto* v : {&dout, &inp, &dinp0}) { for (auto& x : *v) x = round_bf16(x); }
        for (auto& x : weight) x = round_bf16(x);
        mean_rstd_cpu(mean.data(), rstd.data(), inp.data(), rows, C);
        std::vector<float> dinp_ref(dinp0), dweight_ref(dweight0), dbias_ref(dbias0);
        layernorm_backward_cpu(dinp_ref.data(), dweight_ref.data(), dbias_ref.data(), dout.data(), inp.data(),
                               weight.data(), mean.data(), rstd.data(), rows, C);
        std::vector<float> dsum_ref(C);   // dsum0 + the column sums of the updated dinp
        for (int c = 0; c < C; c++) {
            double sum = dsum0[c];
            for (int row = 0; row < rows; row++) { sum += dinp_ref[(size_t)row * C + c]; }
            dsum_ref[c] = (float)sum;
        }
        bf16 *d_dout, *d_inp, *d_dinp, *d_weight;
        float *d_dweight, *d_dbias, *d_dsum, *d_mean, *d_rstd, *d_partial;
        size_t partial_floats = (size_t)ceil_div(rows, LN_WARPS) * 3 * C;   // every version's grid is at most that
        if (layernorm_backward_partial_floats(rows, C) > partial_floats) { printf("v4's grid outgrew the scratch\n"); return 1; }
        cudaCheck(cudaMalloc(&d_dout, n * sizeof(bf16)));
        cudaCheck(cudaMalloc(&d_inp, n * sizeof(bf16)));
        cudaCheck(cudaMalloc(&d_dinp, n * sizeof(bf16)));
        cudaCheck(cudaMalloc(&d_weight, C * sizeof(bf16)));
        cudaCheck(cudaMalloc(&d_dweight, C * sizeof(float)));
        cudaCheck(cudaMalloc(&d_dbias, C * sizeof(float)));
        cudaCheck(cudaMalloc(&d_dsum, C * sizeof(float)));
        cudaCheck(cudaMalloc(&d_mean, rows * sizeof(float)));
        cudaCheck(cudaMalloc(&d_rstd, rows * sizeof(float)));
        cudaCheck(cudaMalloc(&d_partial, partial_floats * sizeof(float)));
        upload_bf16(d_dout, dout.data(), n);
        upload_bf16(d_inp, inp.data(), n);
        upload_bf16(d_weight, weight.data(), C);
        cudaCheck(cudaMemcpy(d_mean, mean.data(), rows * sizeof(float), cudaMemcpyHostToDevice));
        cudaCheck(cudaMemcpy(d_rstd, rstd.data(), rows * sizeof(float), cudaMemcpyHostToDevice));
        for (int v = 0; v < NUM_VERSIONS; v++) {
            upload_bf16(d_dinp, dinp0.data(), n);
            cudaCheck(cudaMemcpy(d_dweight, dweight0.data(), C * sizeof(float), cudaMemcpyHostToDevice));
            cudaCheck(cudaMemcpy(d_dbias, dbias0.data(), C * sizeof(float), cudaMemcpyHostToDevice));
            cudaCheck(cudaMemcpy(d_dsum, dsum0.data(), C * sizeof(float), cudaMemcpyHostToDevice));
            poison(d_partial, partial_floats * sizeof(float));   // a block that skips its partial row shows as NaN
            float* dsum_arg = versions[v].sums_dinp ? d_dsum : NULL;
            versions[v].fn(d_dinp, d_dweight, d_dbias, dsum_arg, d_partial, d_dout, d_inp, d_weight, d_mean, d_rstd, rows, C);
            cudaCheck(cudaDeviceSynchronize());
            std::vector<float> dinp(n), dweight(C), dbias(C);
            download_bf16(dinp.data(), d_dinp, n);
            cudaCheck(cudaMemcpy(dweight.data(), d_dweight, C * sizeof(float), cudaMemcpyDeviceToHost));
            cudaCheck(cudaMemcpy(dbias.data(), d_dbias, C * sizeof(float), cudaMemcpyDeviceToHost));
            CheckResult ri = rel_error(dinp.data(), dinp_ref.data(), n, TOL_BF16);
            CheckResult rw = rel_error(dweight.data(), dweight_ref.data(), C, TOL_FP32);
            CheckResult rb = rel_error(dbias.data(), dbias_ref.data(), C, TOL_FP32);
            // the GPU sums the bf16-rounded dinp, the reference the exact one: a bf16 tolerance
            std::vector<float> dsum(C);
            cudaCheck(cudaMemcpy(dsum.data(), d_dsum, C * sizeof(float), cudaMemcpyDeviceToHost));
            CheckResult rs = rel_error(dsum.data(), dsum_ref.data(), C, TOL_BF16);
            bool ok = ri.pass && rw.pass && rb.pass && (!versions[v].sums_dinp || rs.pass);
            failures += !ok;
            char shape[96];
            snprintf(shape, sizeof(shape), "rows=%d C=%d: %s", rows, C, s.why);
            char sum_col[16] = "-";
            if (versions[v].sums_dinp) { snprintf(sum_col, sizeof(sum_col), "%.2e", rs.rel); }
            printf("%-28s %-52s | %.2e  %.2e  %.2e  %-9s | %s\n", versions[v].name, shape, ri.rel, rw.rel, rb.rel,
                   sum_col, ok ? "ok" : "FAIL");
        }
        cudaCheck(cudaFree(d_dout)); cudaCheck(cudaFree(d_inp)); cudaCheck(cudaFree(d_dinp));
        cudaCheck(cudaFree(d_weight)); cudaCheck(cudaFree(d_dweight)); cudaCheck(cudaFree(d_dbias));
        cudaCheck(cudaFree(d_dsum)); cudaCheck(cudaFree(d_mean)); cudaCheck(cudaFree(d_rstd)); cudaCheck(cudaFree(d_partial));
    }
    if (!check_only) {
        // the trainers' shapes: B*T = 32768 rows at GPT-2 small / medium / XL widths. One set of
        // inputs is 4 x rows x C x 2 bytes >= 200 MB, past the L2, so no rotation is needed.
        printf("\ntiming (median of 20; bytes = dout + inp + dinp read + dinp written; limit %.0f GB/s)\n", H200_GBPS);
        printf("%-28s %6s %6s | %9s %9s %8s\n", "version", "rows", "C", "ms", "GB/s", "of limit");
        const int widths[] = {768, 1024, 1600};
        for (int C : widths) {
            int rows = 32768;
            size_t n = (size_t)rows * C;
            bf16 *d_dout, *d_inp, *d_dinp, *d_weight;
            float *d_dweight, *d_dbias, *d_dsum, *d_mean, *d_rstd, *d_partial;
            cudaCheck(cudaMalloc(&d_dout, n * sizeof(bf16)));
            cudaCheck(cudaMalloc(&d_inp, n * sizeof(bf16)));
            cudaCheck(cudaMalloc(&d_dinp, n * sizeof(bf16)));
            cudaCheck(cudaMalloc(&d_weight, C * sizeof(bf16)));
            cudaCheck(cudaMalloc(&d_dweight, C * sizeof(float)));
            cudaCheck(cudaMalloc(&d_dbias, C * sizeof(float)));
            cudaCheck(cudaMalloc(&d_dsum, C * sizeof(float)));
            cudaCheck(cudaMalloc(&d_mean, rows * sizeof(float)));
            cudaCheck(cudaMalloc(&d_rstd, rows * sizeof(float)));
            cudaCheck(cudaMalloc(&d_partial, (size_t)ceil_div(rows, LN_WARPS) * 3 * C * sizeof(float)));
            init_random_bf16_kernel<<<ceil_div(n, (size_t)256), 256>>>(d_dout, n, 1, 1.0f);
            init_random_bf16_kernel<<<ceil_div(n, (size_t)256), 256>>>(d_inp, n, 2, 2.0f);
            init_random_bf16_kernel<<<ceil_div(n, (size_t)256), 256>>>(d_dinp, n, 3, 0.1f);
            init_random_bf16_kernel<<<ceil_div((size_t)C, (size_t)256), 256>>>(d_weight, C, 4, 1.0f);
            cudaCheckLaunch();
            std::vector<float> ones(rows, 1.0f), zeros(rows, 0.0f);
            cudaCheck(cudaMemcpy(d_mean, zeros.data(), rows * sizeof(float), cudaMemcpyHostToDevice));
            cudaCheck(cudaMemcpy(d_rstd, ones.data(), rows * sizeof(float), cudaMemcpyHostToDevice));
            cudaCheck(cudaMemset(d_dweight, 0, C * sizeof(float)));
            cudaCheck(cudaMemset(d_dbias, 0, C * sizeof(float)));
            cudaCheck(cudaMemset(d_dsum, 0, C * sizeof(float)));
            double bytes = 4.0 * n * sizeof(bf16);
            auto time_one = [&](const char* name, ln_backward_fn fn, float* dsum_arg) {
                float ms = time_median_ms([&](int) {
                    fn(d_dinp, d_dweight, d_dbias, dsum_arg, d_partial, d_dout, d_inp, d_weight, d_mean, d_rstd, rows, C);
                }, 1, 3, 20);
                double gbps = bytes / (ms * 1e-3) / 1e9;
                printf("%-28s %6d %6d | %9.4f %9.0f %7.0f%%\n", name, rows, C, ms, gbps, 100.0 * gbps / H200_GBPS);
            };
            for (int v = 1; v < NUM_VERSIONS; v++) {   // not v1: its column walk takes seconds at this size
                if (versions[v].fn == layernorm_backward5 && C > 1024) { continue; }   // v5 is v4 there
                time_one(versions[v].name, versions[v].fn, NULL);
            }
            time_one("v4 + sums of dinp (trainers)", layernorm_backward, d_dsum);
            cudaCheck(cudaFree(d_dout)); cudaCheck(cudaFree(d_inp)); cudaCheck(cudaFree(d_dinp));
            cudaCheck(cudaFree(d_weight)); cudaCheck(cudaFree(d_dweight)); cudaCheck(cudaFree(d_dbias));
            cudaCheck(cudaFree(d_dsum)); cudaCheck(cudaFree(d_mean)); cudaCheck(cudaFree(d_rstd)); cudaCheck(cudaFree(d_partial));
        }
    }
    printf(failures ? "%d checks failed\n" : "all checks passed\n", failures);
    return failures ? 1 : 0;
}
