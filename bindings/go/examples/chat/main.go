// Command chat connects to a Web PubSub hub (or a local wps-emulator), joins a group, sends
// a message to it and prints what arrives.
//
//	WPS_CLIENT_URL='ws://...access_token=...' go run ./examples/chat
//	WPS_CONNECTION_STRING='Endpoint=http://127.0.0.1:8080;AccessKey=...;' go run ./examples/chat
//
// With a connection string the example mints its own token (user "gopher", allowed to join
// and send to groups) for every connection, through NewClientWithProvider.
package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"webpubsub"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "chat:", err)
		os.Exit(1)
	}
}

func run() error {
	client, err := newClient()
	if err != nil {
		return err
	}
	defer client.Close()

	received := make(chan webpubsub.GroupMessage, 1)
	stopped := make(chan struct{})
	client.OnConnected(func(e webpubsub.ConnectedEvent) {
		fmt.Printf("connected: connection %s, user %s\n", e.ConnectionID, e.UserID)
	})
	client.OnGroupMessage(func(m webpubsub.GroupMessage) {
		fmt.Printf("received in %s from %s (%s, sequence %d): %s\n", m.Group, m.FromUserID, m.DataType, m.SequenceID, m.Data)
		received <- m
	})
	client.OnDisconnected(func(e webpubsub.DisconnectedEvent) { fmt.Printf("disconnected: connection %s\n", e.ConnectionID) })
	client.OnStopped(func(webpubsub.StoppedEvent) { fmt.Println("stopped"); close(stopped) })

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := client.Start(ctx); err != nil {
		return err
	}
	ack, err := client.JoinGroup(ctx, "demo")
	if err != nil {
		return err
	}
	fmt.Printf("joined demo (ack id %d)\n", ack)
	ack, err = client.SendToGroup(ctx, "demo", []byte("hello from Go"), webpubsub.Text)
	var werr *webpubsub.Error
	if errors.As(err, &werr) && werr.Retryable() {
		// The outcome is unknown: retry with the same ack id; the service deduplicates.
		ack, err = client.SendToGroup(ctx, "demo", []byte("hello from Go"), webpubsub.Text, webpubsub.AckID(werr.AckID))
	}
	if err != nil {
		return err
	}
	fmt.Printf("sent to demo (ack id %d)\n", ack)
	select {
	case <-received:
	case <-ctx.Done():
		return errors.New("no message within 30 s")
	}
	// Without an upstream configured, the service refuses events: an error value.
	if _, err := client.SendEvent(ctx, "hello", []byte("x"), webpubsub.Text, webpubsub.FireAndForget()); err != nil {
		return err
	}
	_, err = client.InvokeEvent(ctx, "hello", []byte("x"), webpubsub.Text)
	if errors.As(err, &werr) {
		fmt.Printf("invoke without an upstream: %s (service error %q, retryable %v)\n", err, werr.ServiceError, werr.Retryable())
	} else if err != nil {
		return err
	}
	if err := client.Stop(ctx); err != nil {
		return err
	}
	<-stopped
	return client.Close()
}

func newClient() (*webpubsub.Client, error) {
	if url := os.Getenv("WPS_CLIENT_URL"); url != "" {
		return webpubsub.NewClient(url, options)
	}
	cs := os.Getenv("WPS_CONNECTION_STRING")
	if cs == "" {
		return nil, errors.New("set WPS_CLIENT_URL or WPS_CONNECTION_STRING")
	}
	var endpoint, key string
	for _, part := range strings.Split(cs, ";") {
		if v := strings.TrimPrefix(part, "Endpoint="); v != part {
			endpoint = strings.TrimSuffix(v, "/")
		}
		if v := strings.TrimPrefix(part, "AccessKey="); v != part {
			key = v
		}
	}
	if endpoint == "" || key == "" {
		return nil, errors.New("the connection string needs Endpoint= and AccessKey=")
	}
	return webpubsub.NewClientWithProvider(func(ctx context.Context) (string, error) {
		return mint(endpoint, key, "chat", "gopher", "webpubsub.joinLeaveGroup", "webpubsub.sendToGroup")
	}, options)
}

// options: one retry of a failed operation (the default is 3, with backoff).
var options = &webpubsub.Options{MessageRetries: 1}

// mint signs a client access token (JWT, HS256) for hub with the access key.
func mint(endpoint, key, hub, user string, roles ...string) (string, error) {
	now := time.Now().Unix()
	claims, err := json.Marshal(map[string]interface{}{
		"aud": endpoint + "/client/hubs/" + hub, "iat": now, "exp": now + 3600, "sub": user, "role": roles,
	})
	if err != nil {
		return "", err
	}
	enc := base64.RawURLEncoding.EncodeToString
	input := enc([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + enc(claims)
	mac := hmac.New(sha256.New, []byte(key))
	mac.Write([]byte(input))
	scheme := "ws"
	if strings.HasPrefix(endpoint, "https") {
		scheme = "wss"
	}
	host := endpoint[strings.Index(endpoint, "://"):]
	return scheme + host + "/client/hubs/" + hub + "?access_token=" + input + "." + enc(mac.Sum(nil)), nil
}
