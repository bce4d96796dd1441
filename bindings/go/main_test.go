package webpubsub

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The emulator every test talks to (127.0.0.1 only), started by TestMain.
var (
	emuEndpoint string // http://127.0.0.1:PORT
	emuKey      string
	slowRelease = make(chan struct{}) // closed at the end: releases the "slow" upstream calls
)

const (
	roleJoin = "webpubsub.joinLeaveGroup"
	roleSend = "webpubsub.sendToGroup"
)

// upstream answers the emulator's upstream calls: user event "echo" echoes the body,
// "fail" fails, "slow" answers only at the end of the run; everything else is accepted.
func upstream(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodOptions { // abuse protection: allow the emulator as origin
		w.Header().Set("WebHook-Allowed-Origin", "*")
		return
	}
	body, _ := io.ReadAll(r.Body)
	switch r.Header.Get("ce-type") {
	case "azure.webpubsub.user.echo":
		w.Header().Set("Content-Type", r.Header.Get("Content-Type"))
		w.Write(append([]byte("echo:"), body...))
	case "azure.webpubsub.user.fail":
		w.WriteHeader(http.StatusInternalServerError)
	case "azure.webpubsub.user.slow":
		select {
		case <-slowRelease:
		case <-r.Context().Done():
		}
		w.WriteHeader(http.StatusNoContent)
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}

func emulatorPath() string {
	if p := os.Getenv("WPS_EMULATOR_BIN"); p != "" {
		return p
	}
	p, _ := filepath.Abs("../../target/release/wps-emulator")
	return p
}

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	up := httptest.NewUnstartedServer(http.HandlerFunc(upstream))
	// One request per connection, so no idle connection of the emulator's lingers in this
	// process (the leak test counts descriptors).
	up.Config.SetKeepAlivesEnabled(false)
	up.Start()
	defer up.Close()
	cmd := exec.Command(emulatorPath(), "--host", "127.0.0.1", "--port", "0", "--upstream", up.URL+"/upstream/{event}")
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		fmt.Fprintln(os.Stderr, "emulator:", err)
		return 1
	}
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "start the emulator (build it with cargo build --release -p webpubsub-emulator):", err)
		return 1
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		if sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		io.Copy(io.Discard, out)
	}()
	select {
	case line, ok := <-lines:
		if !ok {
			fmt.Fprintln(os.Stderr, "the emulator printed no connection string")
			return 1
		}
		for _, part := range strings.Split(line, ";") {
			if v := strings.TrimPrefix(part, "Endpoint="); v != part {
				emuEndpoint = v
			}
			if v := strings.TrimPrefix(part, "AccessKey="); v != part {
				emuKey = v
			}
		}
	case <-time.After(60 * time.Second):
		fmt.Fprintln(os.Stderr, "the emulator did not start within 60 s")
		return 1
	}
	code := m.Run()
	close(slowRelease)
	if os.Getenv("WPS_GO_LEAK_SELFTEST") != "" {
		leakForTest()
	}
	// Every client is closed by now: with -asan, nothing of the C heap may be unreachable.
	if checked, leaked := cLeakCheck(); checked {
		if leaked {
			fmt.Fprintln(os.Stderr, "LeakSanitizer: C memory leaked (see above)")
			return 1
		}
		fmt.Fprintln(os.Stderr, "LeakSanitizer: no C memory leaked")
	}
	return code
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// sign makes a JWT (HS256) with the emulator's access key.
func sign(claims map[string]interface{}) string {
	body, _ := json.Marshal(claims)
	input := b64([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + b64(body)
	mac := hmac.New(sha256.New, []byte(emuKey))
	mac.Write([]byte(input))
	return input + "." + b64(mac.Sum(nil))
}

// restClient keeps no idle connection (the leak test counts descriptors).
var restClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 30 * time.Second}

// rest makes an authenticated POST to the emulator (REST API or fault injection).
func rest(path, contentType string, body []byte) (int, error) {
	url := emuEndpoint + path
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+sign(map[string]interface{}{"aud": url, "exp": time.Now().Unix() + 300}))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := restClient.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// clientURL mints a client access URL for hub with the user and roles.
func clientURL(hub, user string, roles ...string) string {
	now := time.Now().Unix()
	claims := map[string]interface{}{
		"aud": emuEndpoint + "/client/hubs/" + hub,
		"iat": now,
		"exp": now + 3600,
	}
	if user != "" {
		claims["sub"] = user
	}
	if len(roles) > 0 {
		claims["role"] = roles
	}
	token := sign(claims)
	return "ws" + strings.TrimPrefix(emuEndpoint, "http") + "/client/hubs/" + hub + "?access_token=" + token
}
