package profile

import "testing"

// BenchmarkDecode is profile decoding alone, per frame and per reading.
func BenchmarkDecode(b *testing.B) {
	for _, tc := range []struct{ profile, frame string }{
		{"masimo/radical-7", "02/22/16 22:47:45 SN=0000056661 SPO2=098% BPM=097 PI=03.60% SPCO=--.-% SPMET=--.-% DESAT=-- PIDELTA=+-- ALARM=0000 EXC=000800"},
		{"nonin/avant", "SPO2=097 HR=072"},
		{"generic/json", `{"device":{"id":"MX450-1234"},"time":"2026-11-25T08:00:00.000Z","observations":[{"code":"MDC_ECG_HEART_RATE","value":72,"unit":"MDC_DIM_BEAT_PER_MIN"},{"code":"MDC_PULS_OXIM_SAT_O2","value":97,"unit":"%"},{"code":"MDC_PULS_OXIM_PULS_RATE","value":71,"unit":"/min"},{"code":"MDC_TTHOR_RESP_RATE","value":16,"unit":"/min"},{"code":"MDC_TEMP_BODY","value":36.9,"unit":"Cel"}]}`},
		{"generic/flat-json", `{"device":"bridge-7/bed-12","ts":1795593600000,"vitals":{"hr":72,"spo2":97,"rr":16,"temp":36.8,"nibp":{"sys":120,"dia":80,"map":93}}}`},
	} {
		b.Run(tc.profile, func(b *testing.B) {
			p := builtin(b, tc.profile)
			frame := []byte(tc.frame)
			readings := 0
			b.ReportAllocs()
			for b.Loop() {
				f, err := p.Decode(frame)
				if err != nil {
					b.Fatal(err)
				}
				readings += len(f.Readings)
			}
			b.ReportMetric(float64(readings)/b.Elapsed().Seconds(), "readings/s")
		})
	}
}
