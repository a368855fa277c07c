/* device.c -- the runner's devices (device.h): one line each. */
#include "device.h"

#include <string.h>

static device_t *(*const device_registry[])(void) = {device_cpu, device_cuda, NULL};

device_t *device_find(const char *name)
{
    for (int i = 0; name && device_registry[i]; i++) {
        device_t *d = device_registry[i]();
        if (d && strcmp(d->name, name) == 0)
            return d;
    }
    return NULL;
}
