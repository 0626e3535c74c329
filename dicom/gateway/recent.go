package gateway

import (
	"context"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/wardgate/wardgate/dicom/dataset"

	"github.com/wardgate/wardgate/buffer"
)

// RecentStudies remembers the last studies the Node received since it
// started, for the status page: when, which modalities, how many instances,
// whether they were handed over and forwarded. It holds no patient data
// (UIDs only) and stays bounded: MaxRecentStudies studies, and for each the
// keys of at most maxRecentKeys instances.
type RecentStudies struct {
	mu      sync.Mutex
	studies map[string]*recentStudy
}

// MaxRecentStudies bounds the studies RecentStudies keeps.
const MaxRecentStudies = 20

const maxRecentKeys = 10000

type recentStudy struct {
	RecentStudy
	keys      map[string]string // SOP Instance UID → SHA-256 of the content
	forwarded bool              // every destination had every key at the last look
}

// RecentStudy is a snapshot of one recently received study.
type RecentStudy struct {
	StudyInstanceUID string    `json:"study_instance_uid"`
	Modalities       []string  `json:"modalities"`
	Instances        int       `json:"instances"`
	FirstReceived    time.Time `json:"first_received"`
	LastReceived     time.Time `json:"last_received"`
	// HandedOver is when the study (with HandedInstances instances) was
	// last handed to the StudySink; zero: not since it was received.
	HandedOver      time.Time `json:"handed_over,omitzero"`
	HandedInstances int       `json:"handed_instances"`
	// Forwarded: every forward destination has every instance (false when
	// there is none).
	Forwarded bool `json:"forwarded"`
}

func (r *RecentStudies) received(h dataset.InstanceHeader, in buffer.Instance) {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.studies == nil {
		r.studies = map[string]*recentStudy{}
	}
	s := r.studies[h.StudyInstanceUID]
	if s == nil {
		if len(r.studies) >= MaxRecentStudies {
			r.evictOldestLocked()
		}
		s = &recentStudy{RecentStudy: RecentStudy{StudyInstanceUID: h.StudyInstanceUID, FirstReceived: now}, keys: map[string]string{}}
		r.studies[h.StudyInstanceUID] = s
	}
	s.LastReceived = now
	if _, seen := s.keys[in.Key]; !seen {
		s.Instances++
	}
	if len(s.keys) < maxRecentKeys {
		s.keys[in.Key] = in.SHA256
	}
	s.forwarded = false
	if h.Modality != "" && !slices.Contains(s.Modalities, h.Modality) {
		s.Modalities = append(s.Modalities, h.Modality)
	}
}

func (r *RecentStudies) evictOldestLocked() {
	var oldest string
	var at time.Time
	for uid, s := range r.studies {
		if oldest == "" || s.LastReceived.Before(at) {
			oldest, at = uid, s.LastReceived
		}
	}
	delete(r.studies, oldest)
}

func (r *RecentStudies) handedOver(study string, instances int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if s := r.studies[study]; s != nil {
		s.HandedOver, s.HandedInstances = time.Now(), instances
	}
}

// snapshot returns the studies, newest first, asking ledger whether each
// destination has their instances.
func (r *RecentStudies) snapshot(ledger *Ledger, destinations []string) []RecentStudy {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]RecentStudy, 0, len(r.studies))
	for _, s := range r.studies {
		if !s.forwarded && len(destinations) > 0 && ledger != nil {
			s.forwarded = allForwarded(ledger, destinations, s.keys)
		}
		c := s.RecentStudy
		c.Modalities = append([]string(nil), s.Modalities...)
		c.Forwarded = s.forwarded
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].LastReceived.After(out[j].LastReceived) })
	return out
}

func allForwarded(ledger *Ledger, destinations []string, keys map[string]string) bool {
	for _, d := range destinations {
		for k, sha := range keys {
			m, ok := ledger.ForwardMarkOf(d, k)
			if !ok || m.Dead || m.SHA256 != sha {
				return false
			}
		}
	}
	return true
}

// handOverNotice tells RecentStudies of each study its StudySink accepted.
type handOverNotice struct {
	StudySink
	recent *RecentStudies
}

func (s handOverNotice) IngestStudy(ctx context.Context, instances []dataset.InstanceHeader) error {
	if err := s.StudySink.IngestStudy(ctx, instances); err != nil {
		return err
	}
	if len(instances) > 0 {
		s.recent.handedOver(instances[0].StudyInstanceUID, len(instances))
	}
	return nil
}
