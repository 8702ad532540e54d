/* info.c - placeholder until the --info report lands. */
#include "info.h"
#include "config.h"

int info_run(uv_loop_t *loop, const struct config *cfg, FILE *out)
{
    (void)loop;
    (void)cfg;
    (void)out;
    return 0;
}
