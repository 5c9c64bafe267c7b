/*
train_gpt_window.cu: GPT-2 training on one GPU with sliding-window + sink attention.

Status: skeleton. It checks the GPU and the libraries it will use (CUDA runtime, cuBLASLt) and
stops; the trainer itself (hand-written forward and backward, cuBLASLt matmuls, the attention
kernels of dev/cuda) is issue 4. Until then scripts/train.sh trains with train_gpt_cpu.
*/
#include <stdio.h>          // printf, fprintf
#include <stdlib.h>         // exit
#include <cuda_runtime.h>   // cudaGetDeviceCount, cudaGetDeviceProperties
#include <cublasLt.h>       // cublasLtCreate: the matmuls will go through cuBLASLt

static void cuda_check(cudaError_t err, const char* file, int line) {
    if (err != cudaSuccess) {
        fprintf(stderr, "error: CUDA %s at %s:%d\n", cudaGetErrorString(err), file, line);
        exit(EXIT_FAILURE);
    }
}
#define cudaCheck(err) cuda_check((err), __FILE__, __LINE__)

static void cublas_check(cublasStatus_t status, const char* file, int line) {
    if (status != CUBLAS_STATUS_SUCCESS) {
        fprintf(stderr, "error: cuBLAS status %d at %s:%d\n", (int)status, file, line);
        exit(EXIT_FAILURE);
    }
}
#define cublasCheck(status) cublas_check((status), __FILE__, __LINE__)

int main(void) {
    int devices = 0;
    cudaCheck(cudaGetDeviceCount(&devices));
    cudaDeviceProp props;
    cudaCheck(cudaGetDeviceProperties(&props, 0));
    cublasLtHandle_t lt;
    cublasCheck(cublasLtCreate(&lt));
    printf("device 0 of %d: %s, %d SMs\n", devices, props.name, props.multiProcessorCount);
    cublasCheck(cublasLtDestroy(lt));
    fprintf(stderr, "error: train_gpt_window is a skeleton; the CUDA trainer is issue 4 (use train_gpt_cpu)\n");
    return 2;
}
