package webpubsub

// Functions the C library calls. This file's preamble holds declarations only (cgo's rule for
// files with //export).

/*
#include <stdint.h>
#include "webpubsub_client.h"
*/
import "C"

import (
	"context"
	"fmt"
	"runtime/cgo"
	"time"
	"unsafe"
)

// goWpsEvent receives every event of a client. In poll mode it runs inside
// wps_client_dispatch or wps_client_free, both called only by the client's dispatcher
// goroutine; it copies the event and queues it for the handlers.
//
//export goWpsEvent
func goWpsEvent(h C.uintptr_t, ev *C.wps_event) {
	c, ok := cgo.Handle(h).Value().(*Client)
	if !ok {
		return
	}
	if e, known := convertEvent(ev); known {
		c.queue(e)
	}
}

// goWpsComplete receives the one completion of an _async operation and hands it to the
// goroutine waiting for it (if it still waits).
//
//export goWpsComplete
func goWpsComplete(h C.uintptr_t, ev *C.wps_event) {
	handle := cgo.Handle(h)
	op, ok := handle.Value().(*pendingOp)
	deleteHandle(handle)
	if !ok {
		return
	}
	r := completion{
		code:    int32(ev.result),
		ackID:   uint64(ev.ack_id),
		service: goStringOrEmpty(ev.error_name),
		message: goStringOrEmpty(ev.message),
	}
	if ev.data != nil {
		r.data = C.GoBytes(unsafe.Pointer(ev.data), C.int(ev.data_len))
		r.dataType = DataType(ev.data_type)
	}
	op.done <- r // buffered: never blocks
}

// goWpsProvide runs the Go URL provider on a library thread that may block.
//
//export goWpsProvide
func goWpsProvide(h C.uintptr_t, buf *C.char, capacity C.size_t, outLen *C.size_t) (rc C.wps_result) {
	p, ok := cgo.Handle(h).Value().(*provider)
	if !ok {
		return C.WPS_ERR_URL_PROVIDER
	}
	url, err := p.url()
	if err != nil {
		return C.WPS_ERR_URL_PROVIDER
	}
	need := len(url) + 1
	if outLen != nil {
		*outLen = C.size_t(need)
	}
	if int(capacity) < need {
		p.keep(url) // the library calls again with a larger buffer
		return C.WPS_ERR_BUFFER_TOO_SMALL
	}
	dst := unsafe.Slice((*byte)(unsafe.Pointer(buf)), need)
	copy(dst, url)
	dst[len(url)] = 0
	return C.WPS_OK
}

// goWpsProviderFree runs once after the provider's last call.
//
//export goWpsProviderFree
func goWpsProviderFree(h C.uintptr_t) {
	deleteHandle(cgo.Handle(h))
}

func goStringOrEmpty(s *C.char) string {
	if s == nil {
		return ""
	}
	return C.GoString(s)
}

// convertEvent copies a borrowed C event into a Go value; false for types this package does
// not know (newer libraries may add some).
func convertEvent(ev *C.wps_event) (interface{}, bool) {
	data := func() []byte {
		if ev.data == nil {
			return []byte{}
		}
		return C.GoBytes(unsafe.Pointer(ev.data), C.int(ev.data_len))
	}
	switch ev._type {
	case C.WPS_EVENT_CONNECTED:
		return ConnectedEvent{ConnectionID: goStringOrEmpty(ev.connection_id), UserID: goStringOrEmpty(ev.user_id)}, true
	case C.WPS_EVENT_DISCONNECTED:
		return DisconnectedEvent{ConnectionID: goStringOrEmpty(ev.connection_id), Message: goStringOrEmpty(ev.message)}, true
	case C.WPS_EVENT_STOPPED:
		return StoppedEvent{Reason: goStringOrEmpty(ev.message)}, true
	case C.WPS_EVENT_SERVER_MESSAGE:
		return ServerMessage{DataType: DataType(ev.data_type), Data: data(), SequenceID: uint64(ev.sequence_id)}, true
	case C.WPS_EVENT_GROUP_MESSAGE:
		return GroupMessage{
			Group:      goStringOrEmpty(ev.group),
			FromUserID: goStringOrEmpty(ev.from_user_id),
			DataType:   DataType(ev.data_type),
			Data:       data(),
			SequenceID: uint64(ev.sequence_id),
		}, true
	case C.WPS_EVENT_REJOIN_GROUP_FAILED:
		return RejoinGroupFailedEvent{
			Group: goStringOrEmpty(ev.group),
			Err: &Error{
				Code:         int32(ev.result),
				ServiceError: goStringOrEmpty(ev.error_name),
				Message:      goStringOrEmpty(ev.message),
				Op:           "rejoin group",
			},
		}, true
	}
	return nil, false
}

// provider holds a Go URL provider for the C callback.
type provider struct {
	fn      func(ctx context.Context) (string, error)
	ctx     context.Context // cancelled by Close
	limit   time.Duration   // bound on one call
	pending chan string     // at most one URL kept for the retry with a larger buffer
}

func (p *provider) keep(url string) {
	select {
	case <-p.pending:
	default:
	}
	p.pending <- url
}

func (p *provider) url() (url string, err error) {
	select {
	case u := <-p.pending:
		return u, nil
	default:
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("webpubsub: URL provider panicked: %v", r)
		}
	}()
	ctx, cancel := context.WithTimeout(p.ctx, p.limit)
	defer cancel()
	return p.fn(ctx)
}
