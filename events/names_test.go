package events

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// subjectKeyVector is one entry of testdata/subject-keys.json, a copy of the
// contract's vectors/subject-keys.json.
type subjectKeyVector struct {
	Tenant      string `json:"tenant"`
	SubjectID   string `json:"subject"`
	SubjectKey  string `json:"subject_key"`
	NATSSubject string `json:"nats_subject_for_purpose_marketing_email"`
}

func TestSubjectKeyVectors(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "subject-keys.json"))
	require.NoError(t, err)
	var vectors []subjectKeyVector
	require.NoError(t, json.Unmarshal(raw, &vectors))
	require.NotEmpty(t, vectors)
	for _, v := range vectors {
		t.Run(v.Tenant+"/"+v.SubjectID, func(t *testing.T) {
			require.NoError(t, ValidateSubjectID(v.SubjectID))
			assert.Equal(t, v.SubjectKey, SubjectKey(v.Tenant, v.SubjectID))
			k := Key{Tenant: v.Tenant, SubjectID: v.SubjectID, Purpose: "marketing_email"}
			require.NoError(t, k.Validate())
			assert.Equal(t, v.NATSSubject, k.NATSSubject())
			assert.Equal(t, "consent.events."+v.Tenant+".*."+v.SubjectKey, PersonFilter(v.Tenant, v.SubjectID))
		})
	}
}

func TestSubjectKeyShape(t *testing.T) {
	subjects := []string{"a", "a.b", "*", ">", "with space", "🎉", strings.Repeat("é", 128)}
	seen := map[string]string{}
	for _, s := range subjects {
		key := SubjectKey(DefaultTenant, s)
		assert.Regexp(t, `^[0-9a-f]{32}$`, key, "one NATS token: no dots, wildcards or spaces")
		assert.NotContains(t, seen, key, "%q collides with %q", s, seen[key])
		seen[key] = s
		natsSubject := Key{Tenant: DefaultTenant, SubjectID: s, Purpose: "p"}.NATSSubject()
		assert.Equal(t, []string{"consent", "events", DefaultTenant, "p", key}, strings.Split(natsSubject, "."),
			"the raw subject id never appears")
	}
	// The zero byte separates tenant and subject: moving bytes across the
	// boundary changes the key.
	assert.NotEqual(t, SubjectKey("ab", "c"), SubjectKey("a", "bc"))
	assert.NotEqual(t, SubjectKey("t1", "x"), SubjectKey("t2", "x"))
}

func TestOrDefaultTenant(t *testing.T) {
	assert.Equal(t, DefaultTenant, OrDefaultTenant(""))
	assert.Equal(t, "acme", OrDefaultTenant("acme"))
}

func TestKindEventType(t *testing.T) {
	want := map[Kind]Type{KindRequest: TypeRequested, KindGrant: TypeGranted, KindDeny: TypeDenied, KindRevoke: TypeRevoked}
	require.Len(t, Kinds, 4)
	for _, k := range Kinds {
		assert.Equal(t, want[k], k.EventType())
		assert.True(t, k.EventType().Known())
	}
	assert.Equal(t, Type(""), Kind("approve").EventType())
	assert.False(t, Type("consent.paused").Known())
}

func TestIsNATSSubject(t *testing.T) {
	k := Key{Tenant: "acme", SubjectID: "alice@example.com", Purpose: "newsletter"}
	assert.True(t, k.IsNATSSubject(k.NATSSubject()))
	long := Key{Tenant: "acme", SubjectID: strings.Repeat("ü", 300), Purpose: "newsletter"} // past the stack buffer
	assert.True(t, long.IsNATSSubject(long.NATSSubject()))
	for _, other := range []Key{
		{Tenant: "acme", SubjectID: "bob@example.com", Purpose: "newsletter"},
		{Tenant: "acm", SubjectID: "alice@example.com", Purpose: "newsletter"},
		{Tenant: "acme", SubjectID: "alice@example.com", Purpose: "newsletters"},
		{Tenant: "default", SubjectID: "alice@example.com", Purpose: "newsletter"},
	} {
		assert.False(t, k.IsNATSSubject(other.NATSSubject()), "%+v", other)
	}
	subj := k.NATSSubject()
	for _, bad := range []string{"", subj[:len(subj)-1], subj + "0", "x" + subj, strings.Replace(subj, "consent.events.", "consent.event.", 1)} {
		assert.False(t, k.IsNATSSubject(bad), bad)
	}
}
