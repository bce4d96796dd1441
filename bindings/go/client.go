// Package webpubsub is a client for Azure Web PubSub (and the local wps-emulator), built on
// the C ABI of libwebpubsub_client through cgo.
//
// A Client connects with a client access URL (NewClient) or a URL provider called for every
// connection (NewClientWithProvider). Every blocking call takes a context and returns as soon
// as the context is done; the operation's outcome is then unknown and it can be retried with
// the ack id carried by the returned *Error. Handlers run in order, one at a time, on one
// goroutine per client. Close frees everything the client holds: its goroutine, its C memory
// and its connection.
package webpubsub

/*
#include <stdlib.h>
#include "wpsgo.h"
*/
import "C"

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"runtime/cgo"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// DataType says how the service and receivers interpret a message's data.
type DataType uint32

const (
	Text     DataType = C.WPS_DATA_TEXT     // UTF-8 text
	JSON     DataType = C.WPS_DATA_JSON     // a JSON value
	Binary   DataType = C.WPS_DATA_BINARY   // raw bytes
	Protobuf DataType = C.WPS_DATA_PROTOBUF // a serialized google.protobuf.Any
)

func (t DataType) String() string {
	switch t {
	case Text:
		return "text"
	case JSON:
		return "json"
	case Binary:
		return "binary"
	case Protobuf:
		return "protobuf"
	}
	return "DataType(" + strconv.Itoa(int(t)) + ")"
}

// Protocol is the WebSocket subprotocol.
type Protocol uint32

const (
	JSONReliable     Protocol = C.WPS_PROTOCOL_JSON_RELIABLE     // json.reliable.webpubsub.azure.v1 (default)
	JSONPlain        Protocol = C.WPS_PROTOCOL_JSON              // json.webpubsub.azure.v1
	ProtobufReliable Protocol = C.WPS_PROTOCOL_PROTOBUF_RELIABLE // protobuf.reliable.webpubsub.azure.v1
	ProtobufPlain    Protocol = C.WPS_PROTOCOL_PROTOBUF          // protobuf.webpubsub.azure.v1
)

// Options configure a Client. The zero value (or nil) gives the library's defaults.
type Options struct {
	Protocol Protocol // 0: JSONReliable
	// AckTimeout bounds one attempt of an acked operation (0: 30 s).
	AckTimeout time.Duration
	// ConnectTimeout bounds one connect attempt (0: 30 s).
	ConnectTimeout time.Duration
	// MessageRetries is how often a failed operation that may pass is retried by the library
	// with the same ack id (0: the default, 3; negative: never).
	MessageRetries int
	// DisableAutoReconnect: stop instead of opening a new connection when one is lost for good.
	DisableAutoReconnect bool
	// DisableAutoRejoin: do not rejoin groups on a new connection.
	DisableAutoRejoin bool
	// CAFile adds PEM root certificates for wss://.
	CAFile string
	// Proxy is an HTTP CONNECT proxy, http://[user:password@]host:port ("": from
	// HTTPS_PROXY/HTTP_PROXY/ALL_PROXY; see NoProxy).
	Proxy string
	// NoProxy connects directly even when the environment names a proxy.
	NoProxy bool
	// UserAgent is an application name put in front of the library's User-Agent.
	UserAgent string
	// ShutdownTimeout bounds what Close and Stop wait for (0: 5 s).
	ShutdownTimeout time.Duration
	// ProviderTimeout bounds one call of a URL provider (0: 30 s); its context ends then.
	ProviderTimeout time.Duration
}

// ConnectedEvent: a new connection (not after a recovery).
type ConnectedEvent struct {
	ConnectionID string
	UserID       string // "" when the connection has no user
}

// DisconnectedEvent: a connection was lost and not recovered, or the client stopped.
type DisconnectedEvent struct {
	ConnectionID string
	Message      string // why, when known
}

// StoppedEvent: the client stopped; the last event of each Start.
type StoppedEvent struct {
	Reason string // why the client gave up by itself; "" after Stop or Close
}

// GroupMessage is a message sent to a group the client joined.
type GroupMessage struct {
	Group      string
	FromUserID string // "" when the publisher had no user id
	DataType   DataType
	Data       []byte
	SequenceID uint64 // 0 on non-reliable protocols
}

// ServerMessage is a message from the server (the service's REST API or an upstream).
type ServerMessage struct {
	DataType   DataType
	Data       []byte
	SequenceID uint64
}

// RejoinGroupFailedEvent: rejoining a group on a new connection failed.
type RejoinGroupFailedEvent struct {
	Group string
	Err   *Error
}

// InvokeResponse is an upstream's answer to InvokeEvent.
type InvokeResponse struct {
	DataType DataType
	Data     []byte
}

type handlers struct {
	connected     func(ConnectedEvent)
	disconnected  func(DisconnectedEvent)
	stopped       func(StoppedEvent)
	groupMessage  func(GroupMessage)
	serverMessage func(ServerMessage)
	rejoinFailed  func(RejoinGroupFailedEvent)
}

// maxBacklog bounds the events held in Go while a handler waits for an operation (the
// handler's client cannot deliver them meanwhile); see (*Client).await. A variable so that
// the tests can lower it.
var maxBacklog = 4096

// dispatchBatch is how many events one wps_client_dispatch call may deliver.
const dispatchBatch = 64

// Client is a connection to one hub. Its methods are safe for concurrent use. Call Close
// when done: until then the client keeps its goroutine, its C resources and its connection.
type Client struct {
	c      *C.wps_client
	handle cgo.Handle
	fd     C.int

	hmu      sync.Mutex
	handlers handlers

	qmu     sync.Mutex
	backlog []interface{} // events waiting for their handlers, oldest first

	wakeMu     sync.Mutex
	wakeR      int
	wakeW      int
	wakeClosed bool

	closed        atomic.Bool
	closeOnce     sync.Once
	done          chan struct{} // closed when the dispatcher finished the teardown
	dispatcherGID atomic.Uint64
	cancel        context.CancelFunc // ends the URL provider's context
}

// NewClient creates a client for a client access URL (ws:// or wss://, with its
// access_token). Nothing connects until Start.
func NewClient(url string, opts *Options) (*Client, error) {
	return newClient(opts, func(o *C.wps_options, out **C.wps_client) C.wps_result {
		curl := C.CString(url)
		defer C.free(unsafe.Pointer(curl))
		return C.wps_client_new(curl, o, out)
	}, nil)
}

// NewClientWithProvider creates a client that calls provider for a fresh client access URL
// before every connection (start and reconnect), like the SDKs' negotiate callback. The
// provider runs on a library thread; its context ends after Options.ProviderTimeout or
// when the client is closed. An error fails that connection attempt.
func NewClientWithProvider(urlProvider func(ctx context.Context) (string, error), opts *Options) (*Client, error) {
	if urlProvider == nil {
		return nil, newError("new client", C.WPS_ERR_NULL_ARG, "", "provider is nil", 0)
	}
	ctx, cancel := context.WithCancel(context.Background())
	limit := 30 * time.Second
	if opts != nil && opts.ProviderTimeout > 0 {
		limit = opts.ProviderTimeout
	}
	p := &provider{fn: urlProvider, ctx: ctx, limit: limit, pending: make(chan string, 1)}
	c, err := newClient(opts, func(o *C.wps_options, out **C.wps_client) C.wps_result {
		h := newHandle(p)
		rc := C.wpsgo_new_with_provider(C.uintptr_t(h), o, out)
		if rc != C.WPS_OK {
			deleteHandle(h) // no client: the destructor never runs
		}
		return rc
	}, cancel)
	if err != nil {
		cancel()
	}
	return c, err
}

func ms(d time.Duration) C.uint32_t {
	if d <= 0 {
		return 0
	}
	v := d.Milliseconds()
	if v < 1 {
		v = 1
	}
	if v > 0xFFFFFFFF {
		v = 0xFFFFFFFF
	}
	return C.uint32_t(v)
}

func applyOptions(o *C.wps_options, opts *Options) (rc C.wps_result, what string) {
	if rc = C.wps_options_set_dispatch_mode(o, C.WPS_DISPATCH_POLL); rc != C.WPS_OK {
		return rc, "dispatch mode"
	}
	if opts == nil {
		return C.WPS_OK, ""
	}
	if opts.Protocol != 0 {
		if rc = C.wps_options_set_protocol(o, C.uint32_t(opts.Protocol)); rc != C.WPS_OK {
			return rc, "Protocol"
		}
	}
	if opts.AckTimeout > 0 {
		if rc = C.wps_options_set_ack_timeout_ms(o, ms(opts.AckTimeout)); rc != C.WPS_OK {
			return rc, "AckTimeout"
		}
	}
	if opts.ConnectTimeout > 0 {
		if rc = C.wps_options_set_connect_timeout_ms(o, ms(opts.ConnectTimeout)); rc != C.WPS_OK {
			return rc, "ConnectTimeout"
		}
	}
	if opts.MessageRetries != 0 {
		retries := opts.MessageRetries
		if retries < 0 {
			retries = 0
		}
		if rc = C.wps_options_set_message_retry(o, C.uint32_t(retries), C.WPS_RETRY_EXPONENTIAL, 800, 120000); rc != C.WPS_OK {
			return rc, "MessageRetries"
		}
	}
	if opts.DisableAutoReconnect {
		if rc = C.wps_options_set_auto_reconnect(o, 0); rc != C.WPS_OK {
			return rc, "DisableAutoReconnect"
		}
	}
	if opts.DisableAutoRejoin {
		if rc = C.wps_options_set_auto_rejoin_groups(o, 0); rc != C.WPS_OK {
			return rc, "DisableAutoRejoin"
		}
	}
	setString := func(set func(*C.char) C.wps_result, v string) C.wps_result {
		cs := C.CString(v)
		defer C.free(unsafe.Pointer(cs))
		return set(cs)
	}
	if opts.CAFile != "" {
		if rc = setString(func(s *C.char) C.wps_result { return C.wps_options_set_ca_file(o, s) }, opts.CAFile); rc != C.WPS_OK {
			return rc, "CAFile"
		}
	}
	if opts.Proxy != "" || opts.NoProxy {
		proxy := opts.Proxy
		if opts.NoProxy {
			proxy = ""
		}
		if rc = setString(func(s *C.char) C.wps_result { return C.wps_options_set_proxy(o, s) }, proxy); rc != C.WPS_OK {
			return rc, "Proxy"
		}
	}
	if opts.UserAgent != "" {
		if rc = setString(func(s *C.char) C.wps_result { return C.wps_options_set_user_agent(o, s) }, opts.UserAgent); rc != C.WPS_OK {
			return rc, "UserAgent"
		}
	}
	if opts.ShutdownTimeout > 0 {
		if rc = C.wps_options_set_shutdown_timeout_ms(o, ms(opts.ShutdownTimeout)); rc != C.WPS_OK {
			return rc, "ShutdownTimeout"
		}
	}
	return C.WPS_OK, ""
}

// lastError reads this thread's error detail; call with the OS thread locked since the
// failing call.
func lastError(op string, rc C.wps_result, ackID uint64) *Error {
	return newError(op, int32(rc), goStringOrEmpty(C.wps_last_error_name()), goStringOrEmpty(C.wps_last_error_message()), ackID)
}

func newClient(opts *Options, create func(*C.wps_options, **C.wps_client) C.wps_result, cancel context.CancelFunc) (*Client, error) {
	if v := C.wps_version_number(); v != C.WPS_VERSION_NUMBER {
		return nil, newError("new client", C.WPS_ERR_UNSUPPORTED, "", fmt.Sprintf(
			"libwebpubsub_client %s does not match the header this package was built with (%s)",
			C.GoString(C.wps_version_string()), C.WPS_VERSION_STRING), 0)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var o *C.wps_options
	if rc := C.wps_options_new(&o); rc != C.WPS_OK {
		return nil, lastError("new client", rc, 0)
	}
	defer C.wps_options_free(o)
	if rc, what := applyOptions(o, opts); rc != C.WPS_OK {
		e := lastError("new client", rc, 0)
		e.Message = "option " + what + ": " + e.Message
		return nil, e
	}
	var raw *C.wps_client
	if rc := create(o, &raw); rc != C.WPS_OK {
		return nil, lastError("new client", rc, 0)
	}
	c := &Client{c: raw, done: make(chan struct{}), cancel: cancel}
	c.handle = newHandle(c)
	fail := func(e *Error) (*Client, error) {
		C.wps_client_free(raw)
		deleteHandle(c.handle)
		return nil, e
	}
	if rc := C.wpsgo_set_callbacks(raw, C.uintptr_t(c.handle)); rc != C.WPS_OK {
		return fail(lastError("new client", rc, 0))
	}
	c.fd = C.wps_client_get_fd(raw)
	if c.fd < 0 {
		return fail(newError("new client", C.WPS_ERR_INTERNAL, "", "no poll descriptor: "+goStringOrEmpty(C.wps_last_error_message()), 0))
	}
	var p [2]int
	if err := syscall.Pipe2(p[:], syscall.O_CLOEXEC); err != nil {
		return fail(newError("new client", C.WPS_ERR_INTERNAL, "", "wake pipe: "+err.Error(), 0))
	}
	c.wakeR, c.wakeW = p[0], p[1]
	go c.dispatcher()
	return c, nil
}

// OnConnected sets the handler for new connections (nil removes it).
func (c *Client) OnConnected(h func(ConnectedEvent)) {
	c.hmu.Lock()
	c.handlers.connected = h
	c.hmu.Unlock()
}

// OnDisconnected sets the handler for lost connections (nil removes it).
func (c *Client) OnDisconnected(h func(DisconnectedEvent)) {
	c.hmu.Lock()
	c.handlers.disconnected = h
	c.hmu.Unlock()
}

// OnStopped sets the handler for the end of each Start (nil removes it).
func (c *Client) OnStopped(h func(StoppedEvent)) {
	c.hmu.Lock()
	c.handlers.stopped = h
	c.hmu.Unlock()
}

// OnGroupMessage sets the handler for messages of joined groups (nil removes it).
func (c *Client) OnGroupMessage(h func(GroupMessage)) {
	c.hmu.Lock()
	c.handlers.groupMessage = h
	c.hmu.Unlock()
}

// OnServerMessage sets the handler for messages from the server (nil removes it).
func (c *Client) OnServerMessage(h func(ServerMessage)) {
	c.hmu.Lock()
	c.handlers.serverMessage = h
	c.hmu.Unlock()
}

// OnRejoinGroupFailed sets the handler for failed rejoins after a reconnect (nil removes it).
func (c *Client) OnRejoinGroupFailed(h func(RejoinGroupFailedEvent)) {
	c.hmu.Lock()
	c.handlers.rejoinFailed = h
	c.hmu.Unlock()
}

// ---------------------------------------------------------------------------- dispatcher

// goid is the current goroutine's id, used only to recognise calls made from a handler.
func goid() uint64 {
	var buf [64]byte
	b := buf[:runtime.Stack(buf[:], false)]
	b = bytes.TrimPrefix(b, []byte("goroutine "))
	if i := bytes.IndexByte(b, ' '); i > 0 {
		id, _ := strconv.ParseUint(string(b[:i]), 10, 64)
		return id
	}
	return 0
}

func (c *Client) onDispatcher() bool { return c.dispatcherGID.Load() == goid() }

// queue appends an event for the handlers (called from the C callbacks).
func (c *Client) queue(e interface{}) {
	c.qmu.Lock()
	c.backlog = append(c.backlog, e)
	c.qmu.Unlock()
}

func (c *Client) backlogLen() int {
	c.qmu.Lock()
	defer c.qmu.Unlock()
	return len(c.backlog)
}

// deliver runs the handlers for the queued events, in order. Handlers may themselves queue
// more (see await); those run too before deliver returns.
func (c *Client) deliver() {
	for {
		c.qmu.Lock()
		if len(c.backlog) == 0 {
			c.backlog = nil
			c.qmu.Unlock()
			return
		}
		e := c.backlog[0]
		c.backlog[0] = nil
		c.backlog = c.backlog[1:]
		c.qmu.Unlock()
		c.hmu.Lock()
		h := c.handlers
		c.hmu.Unlock()
		switch e := e.(type) {
		case ConnectedEvent:
			if h.connected != nil {
				h.connected(e)
			}
		case DisconnectedEvent:
			if h.disconnected != nil {
				h.disconnected(e)
			}
		case StoppedEvent:
			if h.stopped != nil {
				h.stopped(e)
			}
		case GroupMessage:
			if h.groupMessage != nil {
				h.groupMessage(e)
			}
		case ServerMessage:
			if h.serverMessage != nil {
				h.serverMessage(e)
			}
		case RejoinGroupFailedEvent:
			if h.rejoinFailed != nil {
				h.rejoinFailed(e)
			}
		}
	}
}

// dispatcher is the client's one goroutine: it waits for the library's poll descriptor,
// dispatches pending events (completions go straight to their waiting callers, events to
// the backlog), runs the handlers, and on Close frees the client.
func (c *Client) dispatcher() {
	defer close(c.done)
	c.dispatcherGID.Store(goid())
	for !c.closed.Load() {
		if C.wpsgo_wait(c.fd, C.int(c.wakeR)) != 0 {
			break
		}
		var n C.uint32_t
		if rc := C.wps_client_dispatch(c.c, dispatchBatch, 0, &n); rc != C.WPS_OK {
			break
		}
		c.deliver()
	}
	c.closed.Store(true)
	if c.cancel != nil {
		c.cancel() // a URL provider still running returns, so free need not wait for it
	}
	// Completes every accepted operation (their callers get ErrCancelled) and delivers the
	// DISCONNECTED and STOPPED still owed, on this goroutine.
	C.wps_client_free(c.c)
	c.deliver()
	deleteHandle(c.handle)
	c.wakeMu.Lock()
	syscall.Close(c.wakeR)
	syscall.Close(c.wakeW)
	c.wakeClosed = true
	c.wakeMu.Unlock()
}

// Close stops the connection and frees the client: its goroutine, its C memory and its
// handlers. Operations still waiting fail with ErrCancelled; the OnDisconnected and
// OnStopped handlers still run for a started client. Close waits for all of this (bounded
// by Options.ShutdownTimeout plus the handlers' own time), except when called from a
// handler, where the teardown runs right after that handler returns. Later calls return nil.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		c.closed.Store(true)
		c.wakeMu.Lock()
		if !c.wakeClosed {
			syscall.Write(c.wakeW, []byte{1})
		}
		c.wakeMu.Unlock()
	})
	if !c.onDispatcher() {
		<-c.done
	}
	return nil
}

// ---------------------------------------------------------------------------- operations

type completion struct {
	code     int32
	ackID    uint64
	service  string
	message  string
	data     []byte
	dataType DataType
}

// pendingOp is what an _async call's completion is handed to.
type pendingOp struct{ done chan completion }

// call starts an _async operation: begin gets the op's handle as its op_context and returns
// the library's result. On a refused call the handle is released (no completion follows).
func (c *Client) call(op string, begin func(h C.uintptr_t) (C.wps_result, uint64)) (*pendingOp, uint64, error) {
	if c.closed.Load() {
		return nil, 0, newError(op, C.WPS_ERR_INVALID_HANDLE, "", "the client is closed", 0)
	}
	p := &pendingOp{done: make(chan completion, 1)}
	h := newHandle(p)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	rc, ackID := begin(C.uintptr_t(h))
	if rc != C.WPS_OK {
		deleteHandle(h)
		e := lastError(op, rc, ackID)
		if rc == C.WPS_ERR_INVALID_HANDLE {
			e.Message = "the client is closed"
		}
		return nil, ackID, e
	}
	return p, ackID, nil
}

// await waits for an operation's completion or the context's end. Called from a handler it
// keeps dispatching meanwhile (the completion arrives in the same ordered stream as the
// events), holding the events for after the handler; past maxBacklog of them it stops and
// reports ErrTimeout with the ack id, so the operation can be retried.
func (c *Client) await(ctx context.Context, op string, p *pendingOp, ackID uint64) (completion, error) {
	// A context already done when the wait begins wins, also when the operation has completed
	// meanwhile: the answer must not depend on which ready case select picks.
	if ctx.Err() != nil {
		return completion{}, ctxError(op, ctx, ackID)
	}
	if !c.onDispatcher() {
		select {
		case r := <-p.done:
			return r, nil
		case <-ctx.Done():
			return completion{}, ctxError(op, ctx, ackID)
		}
	}
	for {
		select {
		case r := <-p.done:
			return r, nil
		default:
		}
		if ctx.Err() != nil {
			return completion{}, ctxError(op, ctx, ackID)
		}
		if c.backlogLen() >= maxBacklog {
			return completion{}, newError(op, C.WPS_ERR_TIMEOUT, "", "too many events arrived while a handler waited for this operation", ackID)
		}
		var n C.uint32_t
		// Bounded wait, so the context is checked at least every 20 ms.
		if rc := C.wps_client_dispatch(c.c, dispatchBatch, 20, &n); rc != C.WPS_OK {
			select {
			case r := <-p.done:
				return r, nil
			default:
			}
			return completion{}, newError(op, int32(rc), "", "the client is closed", ackID)
		}
	}
}

func (r completion) err(op string) error {
	if r.code == C.WPS_OK {
		return nil
	}
	return newError(op, r.code, r.service, r.message, r.ackID)
}

// Start connects and returns once connected, failed, or ctx is done. When ctx ends first,
// the client is stopped again (asynchronously) and the context's error returned.
func (c *Client) Start(ctx context.Context) error {
	const op = "start"
	var timeout C.uint32_t
	_, hasDeadline := ctx.Deadline()
	if d, ok := ctx.Deadline(); ok {
		timeout = ms(time.Until(d))
		if timeout == 0 {
			return ctxError(op, ctx, 0)
		}
	}
	p, _, err := c.call(op, func(h C.uintptr_t) (C.wps_result, uint64) {
		return C.wpsgo_start(c.c, timeout, h), 0
	})
	if err != nil {
		return err
	}
	r, err := c.await(ctx, op, p, 0)
	if err != nil {
		c.stopInBackground()
		return err
	}
	if e := r.err(op); e != nil {
		if hasDeadline && r.code == C.WPS_ERR_TIMEOUT {
			return deadlineError(op, 0)
		}
		return e
	}
	return nil
}

// stopInBackground stops the client without waiting; its completion is discarded.
func (c *Client) stopInBackground() {
	_, _, _ = c.call("stop", func(h C.uintptr_t) (C.wps_result, uint64) { return C.wpsgo_stop(c.c, h), 0 })
}

// Stop closes the connection and returns once the client stopped or ctx is done (then the
// stop goes on in the background). Operations still waiting fail with ErrCancelled. The
// client can be started again.
func (c *Client) Stop(ctx context.Context) error {
	const op = "stop"
	p, _, err := c.call(op, func(h C.uintptr_t) (C.wps_result, uint64) { return C.wpsgo_stop(c.c, h), 0 })
	if err != nil {
		return err
	}
	r, err := c.await(ctx, op, p, 0)
	if err != nil {
		return err
	}
	return r.err(op)
}

// SendOption modifies SendToGroup and SendEvent.
type SendOption func(*sendConfig)

type sendConfig struct {
	flags C.uint32_t
	ackID uint64
}

// NoEcho keeps a group message from coming back to this client.
func NoEcho() SendOption { return func(s *sendConfig) { s.flags |= C.WPS_SEND_NO_ECHO } }

// FireAndForget sends without an ack: the call returns once the message is queued for the
// connection, failures are not reported, and the ack id is 0.
func FireAndForget() SendOption {
	return func(s *sendConfig) { s.flags |= C.WPS_SEND_FIRE_AND_FORGET }
}

// AckID sends with this ack id: one returned (in an *Error) by an earlier attempt, to retry
// it so that the service deduplicates, or an id of your own (at most 2^63-1).
func AckID(id uint64) SendOption { return func(s *sendConfig) { s.ackID = id } }

func sendOptions(opts []SendOption) sendConfig {
	var s sendConfig
	for _, o := range opts {
		if o != nil {
			o(&s)
		}
	}
	return s
}

func bytesArg(b []byte) (*C.uint8_t, C.size_t) {
	if len(b) == 0 {
		return nil, 0
	}
	return (*C.uint8_t)(unsafe.Pointer(&b[0])), C.size_t(len(b))
}

// acked runs one acked operation and returns its ack id.
func (c *Client) acked(ctx context.Context, op string, begin func(h C.uintptr_t, out *C.uint64_t) C.wps_result) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, ctxError(op, ctx, 0)
	}
	p, ackID, err := c.call(op, func(h C.uintptr_t) (C.wps_result, uint64) {
		var out C.uint64_t
		rc := begin(h, &out)
		return rc, uint64(out)
	})
	if err != nil {
		return ackID, err
	}
	r, err := c.await(ctx, op, p, ackID)
	if err != nil {
		return ackID, err
	}
	if r.ackID != 0 {
		ackID = r.ackID
	}
	if e := r.err(op); e != nil {
		e.(*Error).AckID = ackID
		return ackID, e
	}
	return ackID, nil
}

// JoinGroup joins group and returns its ack id once the service acked.
func (c *Client) JoinGroup(ctx context.Context, group string) (uint64, error) {
	g := C.CString(group)
	defer C.free(unsafe.Pointer(g))
	return c.acked(ctx, "join group", func(h C.uintptr_t, out *C.uint64_t) C.wps_result {
		return C.wpsgo_join(c.c, g, 0, h, out)
	})
}

// LeaveGroup leaves group and returns its ack id once the service acked.
func (c *Client) LeaveGroup(ctx context.Context, group string) (uint64, error) {
	g := C.CString(group)
	defer C.free(unsafe.Pointer(g))
	return c.acked(ctx, "leave group", func(h C.uintptr_t, out *C.uint64_t) C.wps_result {
		return C.wpsgo_leave(c.c, g, 0, h, out)
	})
}

// SendToGroup sends data to group and returns the ack id once the service acked (0 with
// FireAndForget).
func (c *Client) SendToGroup(ctx context.Context, group string, data []byte, dataType DataType, opts ...SendOption) (uint64, error) {
	s := sendOptions(opts)
	g := C.CString(group)
	defer C.free(unsafe.Pointer(g))
	d, n := bytesArg(data)
	id, err := c.acked(ctx, "send to group", func(h C.uintptr_t, out *C.uint64_t) C.wps_result {
		return C.wpsgo_send_to_group(c.c, g, d, n, C.uint32_t(dataType), s.flags, C.uint64_t(s.ackID), h, out)
	})
	runtime.KeepAlive(data)
	return id, err
}

// SendEvent sends a custom event to the upstream and returns the ack id once the service
// acked (0 with FireAndForget; NoEcho does not apply).
func (c *Client) SendEvent(ctx context.Context, event string, data []byte, dataType DataType, opts ...SendOption) (uint64, error) {
	s := sendOptions(opts)
	e := C.CString(event)
	defer C.free(unsafe.Pointer(e))
	d, n := bytesArg(data)
	id, err := c.acked(ctx, "send event", func(h C.uintptr_t, out *C.uint64_t) C.wps_result {
		return C.wpsgo_send_event(c.c, e, d, n, C.uint32_t(dataType), s.flags, C.uint64_t(s.ackID), h, out)
	})
	runtime.KeepAlive(data)
	return id, err
}

// InvokeEvent invokes the upstream event and returns its response. The wait ends with the
// context (its deadline is also passed to the library as the invocation's timeout).
func (c *Client) InvokeEvent(ctx context.Context, event string, data []byte, dataType DataType) (*InvokeResponse, error) {
	const op = "invoke event"
	if err := ctx.Err(); err != nil {
		return nil, ctxError(op, ctx, 0)
	}
	var timeout C.uint32_t
	_, hasDeadline := ctx.Deadline()
	if d, ok := ctx.Deadline(); ok {
		timeout = ms(time.Until(d))
		if timeout == 0 {
			return nil, ctxError(op, ctx, 0)
		}
	}
	e := C.CString(event)
	defer C.free(unsafe.Pointer(e))
	d, n := bytesArg(data)
	p, _, err := c.call(op, func(h C.uintptr_t) (C.wps_result, uint64) {
		return C.wpsgo_invoke(c.c, e, d, n, C.uint32_t(dataType), timeout, h), 0
	})
	runtime.KeepAlive(data)
	if err != nil {
		return nil, err
	}
	r, err := c.await(ctx, op, p, 0)
	if err != nil {
		return nil, err
	}
	if e := r.err(op); e != nil {
		if hasDeadline && r.code == C.WPS_ERR_TIMEOUT {
			return nil, deadlineError(op, 0)
		}
		return nil, e
	}
	if r.data == nil {
		r.data = []byte{}
	}
	return &InvokeResponse{DataType: r.dataType, Data: r.data}, nil
}

// ConnectionID is the current connection's id ("" when not connected).
func (c *Client) ConnectionID() string {
	if c.closed.Load() {
		return ""
	}
	var need C.size_t
	buf := make([]byte, 128)
	for i := 0; i < 2; i++ {
		rc := C.wps_client_get_connection_id(c.c, (*C.char)(unsafe.Pointer(&buf[0])), C.size_t(len(buf)), &need)
		if rc == C.WPS_OK {
			return C.GoString((*C.char)(unsafe.Pointer(&buf[0])))
		}
		if rc != C.WPS_ERR_BUFFER_TOO_SMALL {
			return ""
		}
		buf = make([]byte, int(need))
	}
	return ""
}

// IsConnected reports whether the client has an established connection now.
func (c *Client) IsConnected() bool {
	return !c.closed.Load() && bool(C.wps_client_is_connected(c.c))
}

// liveHandles counts the cgo handles this package holds (clients, providers, operations
// waiting for their completion); the tests check that Close brings it back to zero.
var liveHandles atomic.Int64

func newHandle(v interface{}) cgo.Handle {
	liveHandles.Add(1)
	return cgo.NewHandle(v)
}

func deleteHandle(h cgo.Handle) {
	h.Delete()
	liveHandles.Add(-1)
}
