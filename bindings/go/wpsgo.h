#ifndef WPSGO_H
#define WPSGO_H
#include <stdint.h>
#include "webpubsub_client.h"

wps_result wpsgo_new_with_provider(uintptr_t state, const wps_options *o, wps_client **out);
wps_result wpsgo_set_callbacks(wps_client *c, uintptr_t h);
wps_result wpsgo_start(wps_client *c, uint32_t timeout_ms, uintptr_t op);
wps_result wpsgo_stop(wps_client *c, uintptr_t op);
wps_result wpsgo_join(wps_client *c, const char *g, uint64_t ack, uintptr_t op, uint64_t *out);
wps_result wpsgo_leave(wps_client *c, const char *g, uint64_t ack, uintptr_t op, uint64_t *out);
wps_result wpsgo_send_to_group(wps_client *c, const char *g, const uint8_t *d, size_t n, uint32_t t,
                               uint32_t flags, uint64_t ack, uintptr_t op, uint64_t *out);
wps_result wpsgo_send_event(wps_client *c, const char *e, const uint8_t *d, size_t n, uint32_t t,
                            uint32_t flags, uint64_t ack, uintptr_t op, uint64_t *out);
wps_result wpsgo_invoke(wps_client *c, const char *e, const uint8_t *d, size_t n, uint32_t t,
                        uint32_t timeout_ms, uintptr_t op);
int wpsgo_wait(int fd, int wake);
#endif
