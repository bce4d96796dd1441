// C side of the Go binding: trampolines from the library's callbacks to exported Go
// functions, and the _async calls with those trampolines.
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include "wpsgo.h"
#include "_cgo_export.h"

static void wpsgo_event(void *ud, const wps_event *ev) { goWpsEvent((uintptr_t)ud, (wps_event *)ev); }
static void wpsgo_complete(void *ud, const wps_event *ev) { goWpsComplete((uintptr_t)ud, (wps_event *)ev); }
static wps_result wpsgo_provide(void *ud, char *buf, size_t cap, size_t *out_len) {
	return goWpsProvide((uintptr_t)ud, buf, cap, out_len);
}
static void wpsgo_provider_free(void *ud) { goWpsProviderFree((uintptr_t)ud); }

wps_result wpsgo_new_with_provider(uintptr_t state, const wps_options *o, wps_client **out) {
	return wps_client_new_with_provider_ex(wpsgo_provide, (void *)state, wpsgo_provider_free, o, out);
}

// Routes every event type the package knows to goWpsEvent with the client's handle.
wps_result wpsgo_set_callbacks(wps_client *c, uintptr_t h) {
	static const uint32_t types[] = {WPS_EVENT_CONNECTED, WPS_EVENT_DISCONNECTED, WPS_EVENT_STOPPED,
	                                 WPS_EVENT_SERVER_MESSAGE, WPS_EVENT_GROUP_MESSAGE,
	                                 WPS_EVENT_REJOIN_GROUP_FAILED};
	for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
		wps_result rc = wps_set_callback(c, types[i], wpsgo_event, (void *)h);
		if (rc != WPS_OK) return rc;
	}
	return WPS_OK;
}

wps_result wpsgo_start(wps_client *c, uint32_t timeout_ms, uintptr_t op) {
	return wps_client_start_async(c, timeout_ms, wpsgo_complete, (void *)op);
}
wps_result wpsgo_stop(wps_client *c, uintptr_t op) {
	return wps_client_stop_async(c, wpsgo_complete, (void *)op);
}
wps_result wpsgo_join(wps_client *c, const char *g, uint64_t ack, uintptr_t op, uint64_t *out) {
	return wps_join_group_async(c, g, ack, wpsgo_complete, (void *)op, out);
}
wps_result wpsgo_leave(wps_client *c, const char *g, uint64_t ack, uintptr_t op, uint64_t *out) {
	return wps_leave_group_async(c, g, ack, wpsgo_complete, (void *)op, out);
}
wps_result wpsgo_send_to_group(wps_client *c, const char *g, const uint8_t *d, size_t n, uint32_t t,
                                      uint32_t flags, uint64_t ack, uintptr_t op, uint64_t *out) {
	return wps_send_to_group_async(c, g, d, n, t, flags, ack, wpsgo_complete, (void *)op, out);
}
wps_result wpsgo_send_event(wps_client *c, const char *e, const uint8_t *d, size_t n, uint32_t t,
                                   uint32_t flags, uint64_t ack, uintptr_t op, uint64_t *out) {
	return wps_send_event_async(c, e, d, n, t, flags, ack, wpsgo_complete, (void *)op, out);
}
wps_result wpsgo_invoke(wps_client *c, const char *e, const uint8_t *d, size_t n, uint32_t t,
                               uint32_t timeout_ms, uintptr_t op) {
	return wps_invoke_event_async(c, e, d, n, t, timeout_ms, wpsgo_complete, (void *)op);
}

// Waits until the client's descriptor or the wake descriptor is readable: 0 for the client,
// 1 for the wake descriptor (or a failed poll, which also ends the dispatcher).
int wpsgo_wait(int fd, int wake) {
	struct pollfd p[2] = {{fd, POLLIN, 0}, {wake, POLLIN, 0}};
	for (;;) {
		int r = poll(p, 2, -1);
		if (r < 0 && errno == EINTR) continue;
		if (r < 0) return 1;
		if (p[1].revents) return 1;
		if (p[0].revents & (POLLERR | POLLNVAL)) return 1;
		return 0;
	}
}
