package test

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// BenchmarkMQTTToOutbox measures readings per second from MQTT messages
// queued at a local Mosquitto into the gateway's committed outbox: the
// messages (5 readings each) are published while the gateway is stopped,
// then the clock runs from its start until every reading is stored and
// acknowledged. The FHIR server is unreachable, so delivery takes nothing
// out meanwhile. Run: go test ./test/ -run '^$' -bench MQTTToOutbox -benchtime 1x
func BenchmarkMQTTToOutbox(b *testing.B) {
	dir := b.TempDir()
	port := freePort(b)
	startMosquitto(b, dir, port)
	cfg, _ := gatewayConfig(b, mqttConfig(port))
	const messages = 20000
	const perMessage = 5

	// Create the persistent session, then stop.
	gw := Start(b, "run", "-config", cfg)
	gw.WaitLog(b, `subscribed; waiting for messages`, 30*time.Second)
	gw.Cmd.Process.Signal(syscall.SIGTERM)
	gw.Wait(b, 30*time.Second)

	c := paho.NewClient(paho.NewClientOptions().AddBroker(fmt.Sprintf("tcp://127.0.0.1:%d", port)).SetClientID("bench-pub"))
	if tok := c.Connect(); tok.Wait() && tok.Error() != nil {
		b.Fatal(tok.Error())
	}
	var last paho.Token
	base := time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)
	for i := range messages {
		at := base.Add(time.Duration(i) * time.Second).Format(time.RFC3339)
		msg := fmt.Sprintf(`{"device":{"id":"MX-%d"},"time":%q,"observations":[`+
			`{"code":"MDC_ECG_HEART_RATE","value":%d,"unit":"MDC_DIM_BEAT_PER_MIN"},`+
			`{"code":"MDC_PULS_OXIM_SAT_O2","value":97,"unit":"%%"},`+
			`{"code":"MDC_PULS_OXIM_PULS_RATE","value":71,"unit":"/min"},`+
			`{"code":"MDC_TTHOR_RESP_RATE","value":16,"unit":"/min"},`+
			`{"code":"MDC_TEMP_BODY","value":36.9,"unit":"Cel"}]}`, i%8, at, 60+i%40)
		last = c.Publish("ward4b/bed-14/vitals", 1, false, msg)
	}
	last.Wait()
	c.Disconnect(100)

	b.ResetTimer()
	start := time.Now()
	gw = Start(b, "run", "-config", cfg)
	addr := gw.WaitLog(b, statusRe, 30*time.Second)
	// 8 devices: one Device entry each, then 5 Observations per message.
	want := float64(messages*perMessage + 8)
	for {
		_, ready := getJSON(b, "http://"+addr+"/readyz")
		if w := ready["outbox"].(map[string]any)["waiting"].(float64); w >= want {
			break
		}
		if time.Since(start) > 5*time.Minute {
			b.Fatalf("not all readings stored:\n%s", gw.Log())
		}
		time.Sleep(5 * time.Millisecond)
	}
	el := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(messages*perMessage)/el.Seconds(), "readings/s")
	b.ReportMetric(float64(messages)/el.Seconds(), "messages/s")
	gw.Cmd.Process.Signal(syscall.SIGTERM)
	gw.Wait(b, 30*time.Second)
}
