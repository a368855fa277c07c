/* model_devices.c -- the devices the model runs on (model.h): one line
 * each, named after the backend whose kernels its slots take. */
#include "engine/model.h"

#include <stdio.h>
#include <string.h>

static const engine_device_t engine_devices[] = {
    {"cpu", "c", "f32", 0, engine_model_open_cpu},
    {"cuda", "cu", "bf16", 1, engine_model_open_cuda},
};

#define N_DEVICES (sizeof engine_devices / sizeof engine_devices[0])

const engine_device_t *engine_device_find(const char *name)
{
    for (size_t i = 0; name && i < N_DEVICES; i++)
        if (strcmp(name, engine_devices[i].name) == 0)
            return &engine_devices[i];
    return NULL;
}

const char *engine_device_names(void)
{
    static char names[128];
    if (!names[0])
        for (size_t i = 0; i < N_DEVICES; i++) {
            size_t len = strlen(names);
            snprintf(names + len, sizeof names - len, "%s%s", i ? ", " : "", engine_devices[i].name);
        }
    return names;
}
