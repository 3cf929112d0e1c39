package events

import (
	"encoding/binary"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The examples of RFC 8785 section 3.2.2 (the whole document) and 3.2.3
// (sorting by UTF-16 code units).
func TestCanonicalRFC8785Examples(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{
			name: "section 3.2.2",
			in: `{
  "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
  "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
  "literals": [null, true, false]
}`,
			want: `{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}`,
		},
		{
			name: "section 3.2.3 sorting",
			in: `{
  "\u20ac": "Euro Sign",
  "\r": "Carriage Return",
  "\ufb33": "Hebrew Letter Dalet With Dagesh",
  "1": "One",
  "\ud83d\ude00": "Emoji: Grinning Face",
  "\u0080": "Control",
  "\u00f6": "Latin Small Letter O With Diaeresis"
}`,
			want: "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\u0080\":\"Control\",\"ö\":\"Latin Small Letter O With Diaeresis\"," +
				"\"€\":\"Euro Sign\",\"😀\":\"Emoji: Grinning Face\",\"\ufb33\":\"Hebrew Letter Dalet With Dagesh\"}",
		},
		{
			// Byte order would put U+E000 (EE 80 80) before U+1F600
			// (F0 9F 98 80); UTF-16 puts the surrogate D83D first.
			name: "non-BMP before U+E000..U+FFFF",
			in:   `{"\ue000":1,"\uffff":2,"\ud83d\ude00":3,"\ud7ff":4}`,
			want: "{\"\ud7ff\":4,\"😀\":3,\"\ue000\":1,\"\uffff\":2}",
		},
		{
			name: "nested objects sorted, arrays keep order",
			in:   `{"b":[{"z":1,"a":2},3,"x"],"a":{"d":{},"c":[]}}`,
			want: `{"a":{"c":[],"d":{}},"b":[{"a":2,"z":1},3,"x"]}`,
		},
		{
			name: "prefix sorts first",
			in:   `{"ab":1,"a":2,"":3}`,
			want: `{"":3,"a":2,"ab":1}`,
		},
		{
			name: "whitespace removed",
			in:   " \t\r\n{ \"a\" : [ 1 , true ] }\n ",
			want: `{"a":[1,true]}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Canonical([]byte(tt.in))
			require.NoError(t, err)
			assert.Equal(t, tt.want, string(got))
		})
	}
}

func TestCanonicalStrings(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"short escapes", `"\b\f\n\r\t"`, `"\b\f\n\r\t"`},
		{"other controls as lowercase \\u00xx", `"\u0000\u0001\u001F\u000b"`, `"\u0000\u0001\u001f\u000b"`},
		{"quote and backslash", `"\"\\"`, `"\"\\"`},
		{"solidus unescaped", `"\/a/b"`, `"/a/b"`},
		{"DEL and C1 written as they are", `"\u007f\u0085"`, "\"\u007f\u0085\""},
		{"U+2028 and U+2029 written as they are", `"\u2028\u2029"`, "\"\u2028\u2029\""},
		{"HTML characters written as they are", `"<a href='x'>&amp;</a>"`, `"<a href='x'>&amp;</a>"`},
		{"escaped letters unescaped", `"\u0041\u00e9\u4e2d"`, `"Aé中"`},
		{"surrogate pair to UTF-8", `"\uD83C\uDF89"`, `"🎉"`},
		{"raw UTF-8 kept", `"ünïcødé 🎉"`, `"ünïcødé 🎉"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Canonical([]byte(`{"s":` + tt.in + `}`))
			require.NoError(t, err)
			assert.Equal(t, `{"s":`+tt.want+`}`, string(got))
		})
	}
}

func TestCanonicalNumbers(t *testing.T) {
	tests := []struct{ in, want string }{
		{"0", "0"},
		{"-0", "0"},
		{"-0.0", "0"},
		{"0e10", "0"},
		{"1", "1"},
		{"-1", "-1"},
		{"4.50", "4.5"},
		{"1.0", "1"},
		{"2e-3", "0.002"},
		{"1e21", "1e+21"},
		{"1E21", "1e+21"},
		{"1e20", "100000000000000000000"},
		{"1e-6", "0.000001"},
		{"1e-7", "1e-7"},
		{"1.5e-7", "1.5e-7"},
		{"-1e-7", "-1e-7"},
		{"1e-10", "1e-10"},
		{"1e100", "1e+100"},
		{"1e-100", "1e-100"},
		{"333333333.33333329", "333333333.3333333"},
		{"12345678901234567890", "12345678901234567000"},
		{"9007199254740993", "9007199254740992"},
		{"0.1", "0.1"},
		{"100", "100"},
		{"1e-400", "0"}, // underflows to zero, as in ECMAScript
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := Canonical([]byte(`{"n":` + tt.in + `}`))
			require.NoError(t, err)
			assert.Equal(t, `{"n":`+tt.want+`}`, string(got))
		})
	}
}

// The IEEE 754 test values of RFC 8785 Appendix B, fed as the shortest
// round-trip decimal of each bit pattern.
func TestCanonicalNumbersAppendixB(t *testing.T) {
	tests := []struct {
		bits uint64
		want string
	}{
		{0x0000000000000000, "0"},
		{0x8000000000000000, "0"},
		{0x0000000000000001, "5e-324"},
		{0x8000000000000001, "-5e-324"},
		{0x7fefffffffffffff, "1.7976931348623157e+308"},
		{0xffefffffffffffff, "-1.7976931348623157e+308"},
		{0x4340000000000000, "9007199254740992"},
		{0xc340000000000000, "-9007199254740992"},
		{0x4430000000000000, "295147905179352830000"},
		{0x44b52d02c7e14af5, "9.999999999999997e+22"},
		{0x44b52d02c7e14af6, "1e+23"},
		{0x44b52d02c7e14af7, "1.0000000000000001e+23"},
		{0x444b1ae4d6e2ef4e, "999999999999999700000"},
		{0x444b1ae4d6e2ef4f, "999999999999999900000"},
		{0x444b1ae4d6e2ef50, "1e+21"},
		{0x3eb0c6f7a0b5ed8c, "9.999999999999997e-7"},
		{0x3eb0c6f7a0b5ed8d, "0.000001"},
		{0x41b3de4355555553, "333333333.3333332"},
		{0x41b3de4355555554, "333333333.33333325"},
		{0x41b3de4355555555, "333333333.3333333"},
		{0x41b3de4355555556, "333333333.3333334"},
		{0x41b3de4355555557, "333333333.33333343"},
		{0xbecbf647612f3696, "-0.0000033333333333333333"},
		{0x43143ff3c1cb0959, "1424953923781206.2"},
	}
	for _, tt := range tests {
		f := math.Float64frombits(tt.bits)
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], tt.bits)
		// Feed a 17-digit exponent spelling, which round-trips and is
		// rarely canonical, so parsing is exercised as well as formatting.
		in := strconv.FormatFloat(f, 'E', 16, 64)
		t.Run(tt.want, func(t *testing.T) {
			got, err := Canonical([]byte(`{"n":` + in + `}`))
			require.NoError(t, err, "input %s", in)
			assert.Equal(t, `{"n":`+tt.want+`}`, string(got), "bits %x input %s", b, in)
		})
	}
}

func TestCanonicalRefuses(t *testing.T) {
	deep := strings.Repeat(`{"a":`, MaxCanonicalDepth) + "1" + strings.Repeat("}", MaxCanonicalDepth)
	deeper := strings.Repeat(`{"a":`, MaxCanonicalDepth+1) + "1" + strings.Repeat("}", MaxCanonicalDepth+1)
	deepArray := `{"a":` + strings.Repeat("[", MaxCanonicalDepth) + strings.Repeat("]", MaxCanonicalDepth) + "}"
	_, err := Canonical([]byte(deep))
	require.NoError(t, err, "nesting of exactly MaxCanonicalDepth is accepted")

	tests := []struct{ name, in string }{
		{"empty", ``},
		{"whitespace only", " \n"},
		{"top-level array", `[1,2]`},
		{"top-level string", `"a"`},
		{"top-level null", `null`},
		{"top-level number", `1`},
		{"trailing object", `{"a":1} {"b":2}`},
		{"trailing close brace", `{"a":1}}`},
		{"trailing close bracket", `{"a":1}]`},
		{"trailing garbage", `{"a":1}x`},
		{"unterminated", `{"a":1`},
		{"trailing comma", `{"a":1,}`},
		{"single quotes", `{'a':1}`},
		{"bare word", `{"a":nope}`},
		{"leading zero", `{"a":01}`},
		{"plus sign", `{"a":+1}`},
		{"NaN", `{"a":NaN}`},
		{"number too large", `{"a":1e400}`},
		{"negative number too large", `{"a":-1e309}`},
		{"duplicate member", `{"a":1,"a":1}`},
		{"duplicate after unescaping", `{"a":1,"\u0061":2}`},
		{"duplicate nested", `{"x":{"a":1,"b":2,"a":3}}`},
		{"invalid UTF-8 in string", "{\"a\":\"\xff\"}"},
		{"invalid UTF-8 in name", "{\"\xc3\x28\":1}"},
		{"lone high surrogate", `{"a":"\ud800"}`},
		{"lone high surrogate at end of string", `{"a":"x\uD83D"}`},
		{"high surrogate then letter", `{"a":"\ud83dx"}`},
		{"high surrogate then high", `{"a":"\ud83d\ud83d"}`},
		{"lone low surrogate", `{"a":"\ude00"}`},
		{"lone surrogate in name", `{"\udc00":1}`},
		{"raw control character in string", "{\"a\":\"\x01\"}"},
		{"nested too deep", deeper},
		{"arrays nested too deep", deepArray},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Canonical([]byte(tt.in))
			require.ErrorIs(t, err, ErrNotCanonicalizable)
			assert.Nil(t, got)
		})
	}
}

func TestCanonicalSurrogateScanIsNotFooledByEscapedBackslash(t *testing.T) {
	// `\\ud800` is a backslash followed by the letters "ud800", not an
	// escape.
	got, err := Canonical([]byte(`{"a":"\\ud800","b":"\"\\"}`))
	require.NoError(t, err)
	assert.Equal(t, `{"a":"\\ud800","b":"\"\\"}`, string(got))
}

func TestCanonicalOmitsTopLevelMembersOnly(t *testing.T) {
	got, err := Canonical([]byte(`{"hash":"x","b":{"hash":"y"},"a":1}`), "hash")
	require.NoError(t, err)
	assert.Equal(t, `{"a":1,"b":{"hash":"y"}}`, string(got))

	got, err = Canonical([]byte(`{"a":1,"b":2,"c":3}`), "a", "c", "absent")
	require.NoError(t, err)
	assert.Equal(t, `{"b":2}`, string(got))
}

func TestCanonicalIsIdempotent(t *testing.T) {
	in := `{"z":[1.0,-0,1E2,"\u00e9\n"],"a":{"y":null,"x":false},"\ud83d\ude00":0.5}`
	once, err := Canonical([]byte(in))
	require.NoError(t, err)
	twice, err := Canonical(once)
	require.NoError(t, err)
	assert.Equal(t, string(once), string(twice))
}

func TestCompareUTF16(t *testing.T) {
	tests := []struct {
		a, b string
		want int // sign
	}{
		{"", "", 0},
		{"a", "a", 0},
		{"a", "b", -1},
		{"a", "ab", -1},
		{"ab", "a", 1},
		{"\U0001F600", "\ue000", -1}, // D83D < E000, though F0 > EE in UTF-8
		{"\U0001F600", "\uffff", -1},
		{"\U0001F600", "\ud7ff", 1},
		{"\U0001F600", "\U0001F601", -1},
		{"x\U0001F600", "x\ufb33", -1},
		{"\u00e9", "\u00e8", 1},
	}
	for _, tt := range tests {
		got := compareUTF16(tt.a, tt.b)
		assert.Equal(t, tt.want, sign(got), "compareUTF16(%q, %q) = %d", tt.a, tt.b, got)
		assert.Equal(t, -tt.want, sign(compareUTF16(tt.b, tt.a)), "reversed %q, %q", tt.a, tt.b)
	}
}

func sign(n int) int {
	switch {
	case n < 0:
		return -1
	case n > 0:
		return 1
	}
	return 0
}
