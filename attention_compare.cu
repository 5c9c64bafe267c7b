/*
attention_compare.cu: dense causal vs streaming (sinks + window) attention on one GPU.

Status: skeleton. The comparison with the kernels of dev/cuda, its table, CSV and plots are
issue 3. It checks the GPU and stops.
*/
#include <stdio.h>          // printf, fprintf
#include <stdlib.h>         // exit
#include <cuda_runtime.h>   // cudaGetDeviceProperties

int main(void) {
    cudaDeviceProp props;
    cudaError_t err = cudaGetDeviceProperties(&props, 0);
    if (err != cudaSuccess) { fprintf(stderr, "error: CUDA %s\n", cudaGetErrorString(err)); exit(EXIT_FAILURE); }
    printf("device: %s\n", props.name);
    fprintf(stderr, "error: attention_compare is a skeleton; the comparison is issue 3\n");
    return 2;
}
