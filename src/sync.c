/* sync.c - placeholder until the executor lands. */
#include "sync.h"
#include "err.h"

int sync_folder(const struct sync_folder_job *job, sync_folder_cb cb, void *arg)
{
    (void)job;
    (void)cb;
    (void)arg;
    return OIMAP_ECANCELED;
}
