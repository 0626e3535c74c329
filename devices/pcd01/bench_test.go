package pcd01

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/wardgate/wardgate/devices/hl7"
)

// oru20 is an ORU^R01 of 20 numeric OBX rows (and 4 hierarchy rows), the
// size the throughput target (2,000 messages/s on 2 cores) is
// stated for.
func oru20() []byte {
	var b strings.Builder
	b.WriteString("MSH|^~\\&|MINDRAY_VS900^0019A1FFFE000001^EUI-64|MINDRAY|WARDGATE|WARD4|20240305101500+0800||ORU^R01^ORU_R01|MR-0000001|P|2.6|||AL|NE||UNICODE UTF-8|||IHE_PCD_001^IHE PCD^1.3.6.1.4.1.19376.1.6.1.1.1^ISO\r")
	b.WriteString("PID|||0004711^^^Hospital&1.2.3.4&ISO^PI||\rPV1||I|INTER^^12^1\r")
	b.WriteString("OBR|1|MR-0000001^MINDRAY_VS900^0019A1FFFE000001^EUI-64||182777000^monitoring of patient^SCT|||20240305101500+0800\r")
	b.WriteString("OBX|1||69965^MDC_DEV_MON_PHYSIO_MULTI_PARAM_MDS^MDC|1.0.0.0|||||||X|||||||0019A1FFFE000001^^0019A1FFFE000001^EUI-64\r")
	rows := []string{
		"150456^MDC_PULS_OXIM_SAT_O2^MDC|1.3.1.150456|98|262688^MDC_DIM_PERCENT^MDC",
		"149530^MDC_PULS_OXIM_PULS_RATE^MDC|1.3.1.149530|64|264864^MDC_DIM_BEAT_PER_MIN^MDC",
		"147842^MDC_ECG_HEART_RATE^MDC|1.1.1.147842|66|264864^MDC_DIM_BEAT_PER_MIN^MDC",
		"150301^MDC_PRESS_CUFF_SYS^MDC|1.5.1.150301|121|266016^MDC_DIM_MMHG^MDC",
		"150302^MDC_PRESS_CUFF_DIA^MDC|1.5.1.150302|77|266016^MDC_DIM_MMHG^MDC",
		"0002-4bb8^MDC_PULS_OXIM_SAT_O2^MDC|1.3.1.2|97|0004-0220^MDC_DIM_PERCENT^MDC",
		"150344^MDC_TEMP^MDC|1.7.1.150344|37.1|268192^MDC_DIM_DEGC^MDC",
		"151562^MDC_RESP_RATE^MDC|1.8.1.151562|18|264928^MDC_DIM_RESP_PER_MIN^MDC",
		"150033^MDC_PRESS_BLD_ART_SYS^MDC|1.13.1.1|118|266016^MDC_DIM_MMHG^MDC",
		"150034^MDC_PRESS_BLD_ART_DIA^MDC|1.13.1.2|71|266016^MDC_DIM_MMHG^MDC",
	}
	for i := 0; i < 20; i++ {
		if i%7 == 0 {
			fmt.Fprintf(&b, "OBX|%d||69642^MDC_DEV_ANALY_SAT_O2_VMD^MDC|1.%d.0.0|||||||X\r", 100+i, i)
		}
		fmt.Fprintf(&b, "OBX|%d|NM|%s|||||R|||20240305101458+0800||||0019A1FFFE000001^^0019A1FFFE000001^EUI-64\r", i+2, rows[i%len(rows)])
	}
	return []byte(b.String())
}

func TestBenchMessage(t *testing.T) {
	m, err := hl7.Parse(oru20(), hl7.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	r, err := (&Decoder{}).Decode(m, received)
	if err != nil || len(r.Observations) != 20 || len(r.Problems) != 0 || r.Hierarchy != 4 {
		t.Fatalf("%v: %d observations, %v, %d hierarchy", err, len(r.Observations), r.Problems, r.Hierarchy)
	}
}

func BenchmarkParse(b *testing.B) {
	data := oru20()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := hl7.Parse(data, hl7.Limits{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseDecodeAck is what the listener does per message apart from
// the commit: parse, decode, build the acknowledgement.
func BenchmarkParseDecodeAck(b *testing.B) {
	data := oru20()
	d := &Decoder{}
	now := time.Now()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		m, err := hl7.Parse(data, hl7.Limits{})
		if err != nil {
			b.Fatal(err)
		}
		r, err := d.Decode(m, now)
		if err != nil || len(r.Observations) != 20 {
			b.Fatal(err)
		}
		_ = hl7.Acks(m, hl7.Reply{}, hl7.AckOptions{ControlID: "A1", Time: now})
	}
}

func BenchmarkDecode(b *testing.B) {
	m, err := hl7.Parse(oru20(), hl7.Limits{})
	if err != nil {
		b.Fatal(err)
	}
	d := &Decoder{}
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		if r, err := d.Decode(m, now); err != nil || len(r.Observations) != 20 {
			b.Fatal(err)
		}
	}
}
