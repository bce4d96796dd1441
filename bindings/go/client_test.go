package webpubsub

import (
	"context"
	"errors"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// deadline bounds every wait of a test (generous: CI machines are loaded).
const deadline = 30 * time.Second

func hubFor(t *testing.T) string {
	return strings.NewReplacer("/", "_", " ", "_").Replace(strings.ToLower(t.Name()))
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	t.Cleanup(cancel)
	return ctx
}

// started returns a started client for url, closed at the end of the test.
func started(t *testing.T, url string, opts *Options) *Client {
	t.Helper()
	c, err := NewClient(url, opts)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Start(testCtx(t)); err != nil {
		t.Fatalf("Start: %v", err)
	}
	return c
}

// recv waits for the next value of ch.
func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(deadline):
		t.Fatalf("no %s within %v", what, deadline)
		panic("unreachable")
	}
}

func TestConnectJoinAndGroupMessageRoundTrip(t *testing.T) {
	hub := hubFor(t)
	ctx := testCtx(t)
	bob, err := NewClient(clientURL(hub, "bob", roleJoin, roleSend), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer bob.Close()
	connected := make(chan ConnectedEvent, 1)
	messages := make(chan GroupMessage, 8)
	bob.OnConnected(func(e ConnectedEvent) { connected <- e })
	bob.OnGroupMessage(func(m GroupMessage) { messages <- m })
	if err := bob.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	ev := recv(t, connected, "connected event")
	if ev.UserID != "bob" || ev.ConnectionID == "" || ev.ConnectionID != bob.ConnectionID() {
		t.Fatalf("connected event %+v, connection id %q", ev, bob.ConnectionID())
	}
	if !bob.IsConnected() {
		t.Fatal("IsConnected is false after Start")
	}
	ack, err := bob.JoinGroup(ctx, "room")
	if err != nil || ack == 0 {
		t.Fatalf("JoinGroup: ack %d, %v", ack, err)
	}

	alice := started(t, clientURL(hub, "alice", roleSend), nil)
	ack1, err := alice.SendToGroup(ctx, "room", []byte("hello"), Text)
	if err != nil || ack1 == 0 {
		t.Fatalf("SendToGroup: ack %d, %v", ack1, err)
	}
	ack2, err := alice.SendToGroup(ctx, "room", []byte{0, 1, 2, 255}, Binary, NoEcho())
	if err != nil || ack2 <= ack1 {
		t.Fatalf("SendToGroup NoEcho: ack %d after %d, %v", ack2, ack1, err)
	}
	ack3, err := alice.SendToGroup(ctx, "room", []byte(`{"n":1}`), JSON, FireAndForget())
	if err != nil || ack3 != 0 {
		t.Fatalf("SendToGroup FireAndForget: ack %d, %v", ack3, err)
	}
	want := []GroupMessage{
		{Group: "room", FromUserID: "alice", DataType: Text, Data: []byte("hello")},
		{Group: "room", FromUserID: "alice", DataType: Binary, Data: []byte{0, 1, 2, 255}},
		{Group: "room", FromUserID: "alice", DataType: JSON, Data: []byte(`{"n":1}`)},
	}
	var lastSeq uint64
	for i, w := range want {
		m := recv(t, messages, "group message")
		if m.Group != w.Group || m.FromUserID != w.FromUserID || m.DataType != w.DataType || string(m.Data) != string(w.Data) {
			t.Fatalf("message %d: got %+v, want %+v", i, m, w)
		}
		if m.SequenceID <= lastSeq {
			t.Fatalf("message %d: sequence id %d after %d", i, m.SequenceID, lastSeq)
		}
		lastSeq = m.SequenceID
	}

	if _, err := bob.LeaveGroup(ctx, "room"); err != nil {
		t.Fatalf("LeaveGroup: %v", err)
	}
	// After leaving, a message to the group no longer arrives, while one to another joined
	// group does (ordered delivery makes the second a marker for the first).
	if _, err := bob.JoinGroup(ctx, "other"); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.SendToGroup(ctx, "room", []byte("gone"), Text); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.SendToGroup(ctx, "other", []byte("marker"), Text); err != nil {
		t.Fatal(err)
	}
	if m := recv(t, messages, "marker"); string(m.Data) != "marker" {
		t.Fatalf("after LeaveGroup got %q", m.Data)
	}
}

func TestHandlersRunInOrderOnOneGoroutineAcrossStopAndRestart(t *testing.T) {
	c, err := NewClient(clientURL(hubFor(t), "u"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var mu sync.Mutex
	var seen []string
	gids := map[uint64]bool{}
	note := func(s string) {
		mu.Lock()
		seen = append(seen, s)
		gids[goid()] = true
		mu.Unlock()
	}
	stopped := make(chan struct{}, 2)
	c.OnConnected(func(ConnectedEvent) { note("connected") })
	c.OnDisconnected(func(DisconnectedEvent) { note("disconnected") })
	c.OnStopped(func(e StoppedEvent) {
		if e.Reason != "" {
			note("stopped: " + e.Reason)
		} else {
			note("stopped")
		}
		stopped <- struct{}{}
	})
	ctx := testCtx(t)
	for i := 0; i < 2; i++ {
		if err := c.Start(ctx); err != nil {
			t.Fatal(err)
		}
		if err := c.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		recv(t, stopped, "stopped event")
	}
	mu.Lock()
	defer mu.Unlock()
	want := "connected disconnected stopped connected disconnected stopped"
	if got := strings.Join(seen, " "); got != want {
		t.Fatalf("events %q, want %q", got, want)
	}
	if len(gids) != 1 {
		t.Fatalf("handlers ran on %d goroutines", len(gids))
	}
}

func TestForbiddenIsAnErrorValueWithTheServiceName(t *testing.T) {
	ctx := testCtx(t)
	c := started(t, clientURL(hubFor(t), "nobody"), nil)
	ack, err := c.JoinGroup(ctx, "g")
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("JoinGroup without the role: %v", err)
	}
	if !errors.Is(err, ErrForbidden) || !errors.Is(err, ErrService) || errors.Is(err, ErrTimeout) {
		t.Fatalf("errors.Is does not classify %v", err)
	}
	if e.ServiceError != "Forbidden" || e.Retryable() || e.AckID == 0 || e.AckID != ack {
		t.Fatalf("error %#v (ack %d)", e, ack)
	}
	if !strings.Contains(err.Error(), "Forbidden") {
		t.Fatalf("message %q", err)
	}
	_, err = c.SendToGroup(ctx, "g", []byte("x"), Text)
	if !errors.Is(err, ErrForbidden) {
		t.Fatalf("SendToGroup without the role: %v", err)
	}
	// A bad argument is refused before anything is sent.
	_, err = c.SendToGroup(ctx, "g", []byte("x"), DataType(99))
	if !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("unknown data type: %v", err)
	}
	if _, err := NewClient("http://not-a-websocket", nil); !errors.Is(err, ErrInvalidURL) {
		t.Fatalf("http:// URL: %v", err)
	}
	if _, err := NewClient(clientURL("h", ""), &Options{Protocol: 42}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("unknown protocol: %v", err)
	}
}

func TestSendEventAndInvokeEventReachTheUpstream(t *testing.T) {
	ctx := testCtx(t)
	c := started(t, clientURL(hubFor(t), "u"), &Options{MessageRetries: -1})
	ack, err := c.SendEvent(ctx, "note", []byte("n"), Text)
	if err != nil || ack == 0 {
		t.Fatalf("SendEvent: ack %d, %v", ack, err)
	}
	if ack, err := c.SendEvent(ctx, "note", nil, Text, FireAndForget()); err != nil || ack != 0 {
		t.Fatalf("SendEvent FireAndForget: ack %d, %v", ack, err)
	}
	resp, err := c.InvokeEvent(ctx, "echo", []byte("hello"), Text)
	if err != nil {
		t.Fatalf("InvokeEvent: %v", err)
	}
	if string(resp.Data) != "echo:hello" || resp.DataType != Text {
		t.Fatalf("response %q (%v)", resp.Data, resp.DataType)
	}
	_, err = c.InvokeEvent(ctx, "fail", []byte("x"), Text)
	var e *Error
	if !errors.As(err, &e) || !errors.Is(err, ErrService) || e.ServiceError == "" {
		t.Fatalf("failing upstream: %#v", err)
	}
}

func TestContextEndsEveryWait(t *testing.T) {
	c := started(t, clientURL(hubFor(t), "u", roleJoin), &Options{MessageRetries: -1})
	// The upstream holds "slow" until the end of the run: only the context can end the wait.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	t0 := time.Now()
	_, err := c.InvokeEvent(ctx, "slow", []byte("x"), Text)
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(t0) > 5*time.Second {
		t.Fatalf("InvokeEvent after %v: %v", time.Since(t0), err)
	}
	var e *Error
	if !errors.As(err, &e) || !e.Retryable() {
		t.Fatalf("not a retryable *Error: %#v", err)
	}
	ctx2, cancel2 := context.WithCancel(context.Background())
	errs := make(chan error, 1)
	go func() {
		_, err := c.SendEvent(ctx2, "slow", []byte("x"), Text)
		errs <- err
	}()
	cancel2()
	err = recv(t, errs, "SendEvent result")
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("SendEvent after cancel: %v", err)
	}
	// A context already done never starts the operation.
	done, cancel3 := context.WithCancel(context.Background())
	cancel3()
	if _, err := c.JoinGroup(done, "g"); !errors.Is(err, context.Canceled) {
		t.Fatalf("JoinGroup with a done context: %v", err)
	}

	// Start against a listener that never answers the upgrade: the context ends it.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var held []net.Conn
	var hmu sync.Mutex
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			hmu.Lock()
			held = append(held, conn)
			hmu.Unlock()
		}
	}()
	defer func() {
		hmu.Lock()
		for _, c := range held {
			c.Close()
		}
		hmu.Unlock()
	}()
	mute, err := NewClient("ws://"+l.Addr().String()+"/client/hubs/h?access_token=x", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer mute.Close()
	ctx4, cancel4 := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel4()
	t0 = time.Now()
	if err := mute.Start(ctx4); !errors.Is(err, context.DeadlineExceeded) || time.Since(t0) > 5*time.Second {
		t.Fatalf("Start against a mute listener after %v: %v", time.Since(t0), err)
	}
}

func TestURLProviderIsCalledForEachConnection(t *testing.T) {
	hub := hubFor(t)
	var calls atomic.Int32
	c, err := NewClientWithProvider(func(ctx context.Context) (string, error) {
		calls.Add(1)
		// A long URL makes the library ask again with a larger buffer.
		return clientURL(hub, "prov-"+strings.Repeat("x", 600), roleJoin), nil
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	connected := make(chan ConnectedEvent, 2)
	c.OnConnected(func(e ConnectedEvent) { connected <- e })
	ctx := testCtx(t)
	for i := 1; i <= 2; i++ {
		if err := c.Start(ctx); err != nil {
			t.Fatalf("Start %d: %v", i, err)
		}
		if e := recv(t, connected, "connected"); !strings.HasPrefix(e.UserID, "prov-") {
			t.Fatalf("user %q", e.UserID)
		}
		if got := calls.Load(); got != int32(i) {
			t.Fatalf("provider calls after start %d: %d", i, got)
		}
		if _, err := c.JoinGroup(ctx, "g"); err != nil {
			t.Fatal(err)
		}
		if err := c.Stop(ctx); err != nil {
			t.Fatal(err)
		}
	}

	failing, err := NewClientWithProvider(func(ctx context.Context) (string, error) {
		return "", errors.New("no token today")
	}, &Options{DisableAutoReconnect: true})
	if err != nil {
		t.Fatal(err)
	}
	defer failing.Close()
	if err := failing.Start(ctx); !errors.Is(err, ErrURLProvider) {
		t.Fatalf("Start with a failing provider: %v", err)
	}
	panicking, err := NewClientWithProvider(func(ctx context.Context) (string, error) {
		panic("provider bug")
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer panicking.Close()
	if err := panicking.Start(ctx); !errors.Is(err, ErrURLProvider) {
		t.Fatalf("Start with a panicking provider: %v", err)
	}
}

func TestHandlersMayCallBlockingOperations(t *testing.T) {
	hub := hubFor(t)
	ctx := testCtx(t)
	c := started(t, clientURL(hub, "u", roleJoin, roleSend), nil)
	replies := make(chan string, 4)
	errs := make(chan error, 4)
	c.OnGroupMessage(func(m GroupMessage) {
		if m.Group == "ping" {
			// Called on the handler goroutine: the completion must still arrive.
			_, err := c.SendToGroup(ctx, "pong", append([]byte("re:"), m.Data...), Text)
			errs <- err
			return
		}
		replies <- string(m.Data)
	})
	for _, g := range []string{"ping", "pong"} {
		if _, err := c.JoinGroup(ctx, g); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.SendToGroup(ctx, "ping", []byte("1"), Text); err != nil {
		t.Fatal(err)
	}
	if err := recv(t, errs, "send from the handler"); err != nil {
		t.Fatalf("SendToGroup from a handler: %v", err)
	}
	if r := recv(t, replies, "reply"); r != "re:1" {
		t.Fatalf("reply %q", r)
	}
}

// goroutines is runtime.NumGoroutine without the test's upstream HTTP server, whose
// keep-alive connections from the emulator come and go on their own.
func goroutines() int {
	buf := make([]byte, 1<<20)
	all := string(buf[:runtime.Stack(buf, true)])
	n := runtime.NumGoroutine()
	for _, g := range strings.Split(all, "\n\n") {
		if strings.Contains(g, "net/http.") {
			n--
		}
	}
	return n
}

// openFDs counts this process's open descriptors.
func openFDs(t *testing.T) int {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	return len(entries)
}

// settle waits (bounded) until f() <= want, giving exiting goroutines and the runtime time.
func settle(f func() int, want int) int {
	end := time.Now().Add(deadline)
	for {
		got := f()
		if got <= want || time.Now().After(end) {
			return got
		}
		runtime.Gosched()
		time.Sleep(5 * time.Millisecond)
	}
}

func TestCloseLeaksNoGoroutineHandleOrDescriptor(t *testing.T) {
	hub := hubFor(t)
	ctx := testCtx(t)
	// Warm up the library (its runtime and callback threads live for the process).
	warm := started(t, clientURL(hub, "w"), nil)
	warm.Close()
	runtime.GC()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepts := make(chan net.Conn, 8)
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				close(accepts)
				return
			}
			accepts <- conn
		}
	}()
	before, fds, handles := goroutines(), openFDs(t), liveHandles.Load()

	for round := 0; round < 3; round++ {
		var clients []*Client
		for i := 0; i < 10; i++ {
			c, err := NewClient(clientURL(hub, "u", roleJoin, roleSend), nil)
			if err != nil {
				t.Fatal(err)
			}
			c.OnGroupMessage(func(GroupMessage) {})
			clients = append(clients, c)
			if i%3 == 0 {
				continue // never started
			}
			if err := c.Start(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := c.JoinGroup(ctx, "g"); err != nil {
				t.Fatal(err)
			}
			if _, err := c.SendToGroup(ctx, "g", []byte("x"), Text); err != nil {
				t.Fatal(err)
			}
		}
		// An operation still waiting when Close comes fails with ErrCancelled: a Start against
		// a listener that never answers.
		mute, err := NewClient("ws://"+l.Addr().String()+"/client/hubs/h?access_token=x", nil)
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, mute)
		pending := make(chan error, 1)
		go func() { pending <- mute.Start(context.Background()) }()
		recv(t, accepts, "the pending start's connection")
		t0 := time.Now()
		for _, c := range clients {
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
			if err := c.Close(); err != nil {
				t.Fatal("second Close:", err)
			}
		}
		t.Logf("round %d: closed 10 clients in %v", round, time.Since(t0))
		if err := recv(t, pending, "pending start"); !errors.Is(err, ErrCancelled) && !errors.Is(err, ErrClosed) {
			t.Fatalf("start pending at Close: %v", err)
		}
		if _, err := clients[0].JoinGroup(ctx, "g"); !errors.Is(err, ErrClosed) {
			t.Fatalf("JoinGroup after Close: %v", err)
		}
	}
	l.Close()
	for conn := range accepts {
		conn.Close()
	}
	if got := settle(goroutines, before); got > before {
		buf := make([]byte, 1<<16)
		t.Fatalf("goroutines: %d before, %d after Close\n%s", before, got, buf[:runtime.Stack(buf, true)])
	}
	if got := settle(func() int { return openFDs(t) }, fds); got > fds {
		t.Fatalf("descriptors: %d before, %d after Close", fds, got)
	}
	if got := liveHandles.Load(); got != handles {
		t.Fatalf("cgo handles: %d before, %d after Close", handles, got)
	}
}

func TestCloseFromAHandler(t *testing.T) {
	c, err := NewClient(clientURL(hubFor(t), "u"), nil)
	if err != nil {
		t.Fatal(err)
	}
	stopped := make(chan struct{})
	c.OnConnected(func(ConnectedEvent) { c.Close() })
	c.OnStopped(func(StoppedEvent) { close(stopped) })
	if err := c.Start(testCtx(t)); err != nil && !errors.Is(err, ErrCancelled) {
		t.Fatal(err)
	}
	recv(t, stopped, "stopped after Close from a handler")
	c.Close()
	select {
	case <-c.done:
	case <-time.After(deadline):
		t.Fatal("teardown did not finish")
	}
}

func TestServerMessagesFromTheRESTAPI(t *testing.T) {
	hub := hubFor(t)
	c := started(t, clientURL(hub, "u"), nil)
	messages := make(chan ServerMessage, 2)
	c.OnServerMessage(func(m ServerMessage) { messages <- m })
	path := "/api/hubs/" + hub + "/connections/" + c.ConnectionID() + "/:send?api-version=2024-12-01"
	if code, err := rest(path, "text/plain", []byte("from the server")); err != nil || code/100 != 2 {
		t.Fatalf("REST send: %d %v", code, err)
	}
	if code, err := rest(path, "application/octet-stream", []byte{9, 8, 7}); err != nil || code/100 != 2 {
		t.Fatalf("REST send: %d %v", code, err)
	}
	m := recv(t, messages, "server message")
	if m.DataType != Text || string(m.Data) != "from the server" || m.SequenceID == 0 {
		t.Fatalf("server message %+v", m)
	}
	m = recv(t, messages, "server message")
	if m.DataType != Binary || string(m.Data) != string([]byte{9, 8, 7}) {
		t.Fatalf("server message %+v", m)
	}
}

func TestReconnectCallsTheProviderAgainAndReportsAFailedRejoin(t *testing.T) {
	hub := hubFor(t)
	var calls atomic.Int32
	c, err := NewClientWithProvider(func(ctx context.Context) (string, error) {
		if calls.Add(1) == 1 {
			return clientURL(hub, "u", roleJoin), nil
		}
		return clientURL(hub, "u"), nil // the new connection may no longer join
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	events := make(chan string, 8)
	rejoins := make(chan RejoinGroupFailedEvent, 1)
	c.OnConnected(func(e ConnectedEvent) { events <- "connected" })
	c.OnDisconnected(func(e DisconnectedEvent) { events <- "disconnected" })
	c.OnRejoinGroupFailed(func(e RejoinGroupFailedEvent) { rejoins <- e })
	ctx := testCtx(t)
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	first := c.ConnectionID()
	if _, err := c.JoinGroup(ctx, "kept"); err != nil {
		t.Fatal(err)
	}
	// The session is forgotten: recovery fails, the client reconnects with a fresh URL.
	if code, err := rest("/_emulator/hubs/"+hub+"/connections/"+first+"/:expire", "", nil); err != nil || code != 204 {
		t.Fatalf("expire: %d %v", code, err)
	}
	r := recv(t, rejoins, "rejoin-group-failed event")
	if r.Group != "kept" || !errors.Is(r.Err, ErrForbidden) || r.Err.ServiceError != "Forbidden" {
		t.Fatalf("rejoin failure %+v (%v)", r, r.Err)
	}
	for _, want := range []string{"connected", "disconnected", "connected"} {
		if got := recv(t, events, want); got != want {
			t.Fatalf("event %q, want %q", got, want)
		}
	}
	if calls.Load() != 2 || c.ConnectionID() == first || c.ConnectionID() == "" {
		t.Fatalf("provider calls %d, connection %q after %q", calls.Load(), c.ConnectionID(), first)
	}
}

func TestEventsArrivingWhileAHandlerWaitsComeAfterItInOrder(t *testing.T) {
	hub := hubFor(t)
	ctx := testCtx(t)
	c := started(t, clientURL(hub, "u", roleJoin, roleSend), nil)
	var got []string
	waited := make(chan error, 1)
	done := make(chan struct{})
	c.OnGroupMessage(func(m GroupMessage) {
		got = append(got, string(m.Data))
		switch string(m.Data) {
		case "first":
			// Waits on the handler goroutine; the next messages are held meanwhile.
			_, err := c.SendToGroup(ctx, "g", []byte("from-handler"), Text)
			waited <- err
		case "last":
			close(done)
		}
	})
	if _, err := c.JoinGroup(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.SendToGroup(ctx, "g", []byte("first"), Text); err != nil {
		t.Fatal(err)
	}
	if _, err := c.SendToGroup(ctx, "g", []byte("second"), Text); err != nil {
		t.Fatal(err)
	}
	if err := recv(t, waited, "send from the handler"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.SendToGroup(ctx, "g", []byte("last"), Text); err != nil {
		t.Fatal(err)
	}
	recv(t, done, "last message")
	// "second" may arrive before or after the handler's own message reached the service, but
	// every message is delivered once, in the service's order, after "first"'s handler.
	joined := strings.Join(got, " ")
	if joined != "first second from-handler last" && joined != "first from-handler second last" {
		t.Fatalf("handled %q", joined)
	}
}

func TestAHandlerWaitingPastTheBacklogLimitGetsARetryableError(t *testing.T) {
	saved := maxBacklog
	maxBacklog = 3
	t.Cleanup(func() { maxBacklog = saved }) // registered first: runs after the clients closed
	hub := hubFor(t)
	ctx := testCtx(t)
	c := started(t, clientURL(hub, "u", roleJoin), nil)
	flood := started(t, clientURL(hub, "f", roleSend), nil)
	var got []string
	waited := make(chan error, 1)
	done := make(chan struct{})
	c.OnGroupMessage(func(m GroupMessage) {
		got = append(got, string(m.Data))
		switch string(m.Data) {
		case "block":
			// "slow" is never answered: only the backlog limit (or ctx) ends this wait.
			_, err := c.InvokeEvent(ctx, "slow", nil, Text)
			waited <- err
		case "9":
			close(done)
		}
	})
	if _, err := c.JoinGroup(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	if _, err := flood.SendToGroup(ctx, "g", []byte("block"), Text); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		if _, err := flood.SendToGroup(ctx, "g", []byte(strconv.Itoa(i)), Text); err != nil {
			t.Fatal(err)
		}
	}
	err := recv(t, waited, "the handler's invoke")
	var e *Error
	if !errors.As(err, &e) || !errors.Is(err, ErrTimeout) || !e.Retryable() {
		t.Fatalf("invoke past the backlog limit: %v", err)
	}
	recv(t, done, "the held messages")
	if joined := strings.Join(got, " "); joined != "block 0 1 2 3 4 5 6 7 8 9" {
		t.Fatalf("handled %q", joined)
	}
}

func TestStopWithADoneContextStillStops(t *testing.T) {
	c := started(t, clientURL(hubFor(t), "u"), nil)
	stopped := make(chan StoppedEvent, 1)
	c.OnStopped(func(e StoppedEvent) { stopped <- e })
	done, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.Stop(done); !errors.Is(err, context.Canceled) {
		t.Fatalf("Stop with a done context: %v", err)
	}
	if e := recv(t, stopped, "stopped event"); e.Reason != "" {
		t.Fatalf("stopped: %+v", e)
	}
	if c.IsConnected() {
		t.Fatal("still connected after the stop")
	}
	// Started again, it works as before.
	if err := c.Start(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(testCtx(t)); !errors.Is(err, ErrInvalidState) {
		t.Fatalf("Start while started: %v", err)
	}
}
