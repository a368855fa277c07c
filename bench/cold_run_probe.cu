// cold_run_probe.cu -- why the first run after a held-back set's upload is
// slower than the back-to-back timed runs (docs/SECURITY.md, "On the
// GPU").  One process, no harness: an L2 flush (a memset, as the runner's)
// and a bandwidth-bound kernel reading BYTES, timed from the host (launch
// to synchronise, as the worker's clock sees a run) and by CUDA events,
// after each of these:
//   warm       the previous run (back to back, as the timed runs)
//   sleep      the host sleeping IDLE_MS with the GPU idle
//   upload     a synchronous upload of BYTES from pinned memory
//   write+up   the host writing BYTES (as the worker writes a set), then
//              the upload
//   spin+up    the same, with a spin kernel keeping the SMs busy on
//              another stream during the write and the upload
// Build and run on the GPU host:
//   nvcc -O2 -arch=sm_90 bench/cold_run_probe.cu -o /tmp/probe && /tmp/probe [MB] [IDLE_MS]
#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <math.h>
#include <algorithm>
#include <vector>

#define CK(x) do { cudaError_t e_ = (x); if (e_ != cudaSuccess) { \
    fprintf(stderr, "%s: %s\n", #x, cudaGetErrorString(e_)); exit(1); } } while (0)

__global__ void read_all(const uint4 *p, size_t n, unsigned *out)
{
    unsigned acc = 0;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        acc ^= p[i].x ^ p[i].y ^ p[i].z ^ p[i].w;
    if (acc == 0x12345678u)
        out[0] = acc;
}

__global__ void spin_until(volatile int *stop)
{
    while (!*stop)
        __nanosleep(1000);
}

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec * 1e-3;
}

int main(int argc, char **argv)
{
    size_t bytes = (size_t)(argc > 1 ? atof(argv[1]) : 31) * (1 << 20);
    double idle_ms = argc > 2 ? atof(argv[2]) : 5;
    size_t flush_bytes = 200u << 20;
    void *dev, *flush, *host_pinned;
    unsigned *out;
    int *stop;
    CK(cudaMalloc(&dev, bytes));
    CK(cudaMalloc(&flush, flush_bytes));
    CK(cudaMalloc(&out, 4));
    CK(cudaMallocHost(&host_pinned, bytes));
    CK(cudaHostAlloc(&stop, sizeof(int), cudaHostAllocMapped));
    char *src = (char *)malloc(bytes);
    memset(src, 1, bytes);
    cudaStream_t s, side;
    CK(cudaStreamCreate(&s));
    CK(cudaStreamCreateWithFlags(&side, cudaStreamNonBlocking));
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    int sms = 0;
    CK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
    auto run = [&](double *ev_us) {
        double t0 = now_us();
        CK(cudaMemsetAsync(flush, 0x5a, flush_bytes, s));
        CK(cudaEventRecord(e0, s));
        read_all<<<sms * 4, 256, 0, s>>>((const uint4 *)dev, bytes / 16, out);
        CK(cudaEventRecord(e1, s));
        CK(cudaEventSynchronize(e1));
        CK(cudaDeviceSynchronize());
        double t1 = now_us();
        float ms;
        CK(cudaEventElapsedTime(&ms, e0, e1));
        *ev_us = ms * 1e3;
        return t1 - t0;
    };
    auto sleep_ms = [](double ms) {
        struct timespec ts = {(time_t)(ms / 1e3), (long)(fmod(ms, 1e3) * 1e6)};
        nanosleep(&ts, NULL);
    };
    const char *names[] = {"warm", "sleep", "upload", "write+up", "spin+up"};
    for (int mode = 0; mode < 5; mode++) {
        std::vector<double> wall, ev;
        for (int r = 0; r < 25; r++) {
            double evu;
            run(&evu);   // the previous run
            if (mode == 1)
                sleep_ms(idle_ms);
            if (mode == 4) {
                *stop = 0;
                spin_until<<<sms, 32, 0, side>>>(stop);
            }
            if (mode >= 3) {
                src[r] ^= 1;
                memcpy(host_pinned, src, bytes);
            }
            if (mode >= 2)
                CK(cudaMemcpy(dev, host_pinned, bytes, cudaMemcpyHostToDevice));
            if (mode == 4) {
                *stop = 1;
                CK(cudaStreamSynchronize(side));
            }
            wall.push_back(run(&evu));
            ev.push_back(evu);
        }
        std::sort(wall.begin(), wall.end());
        std::sort(ev.begin(), ev.end());
        printf("%-9s host wall p50 %7.1f us p90 %7.1f  events p50 %7.1f us p90 %7.1f\n", names[mode], wall[12],
               wall[22], ev[12], ev[22]);
    }
    return 0;
}
