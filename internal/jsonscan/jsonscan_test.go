package jsonscan

import "testing"

// The scanner finds members as a map decode of the object would, exactly.
func TestMember(t *testing.T) {
	for _, tt := range []struct {
		in, key, want string
		n             int
	}{
		{`{"a":1}`, "a", `1`, 1},
		{`{"A":1}`, "a", ``, 0},
		{` {"a" : [1,{"a":"}"}] , "b":"\"" } `, "a", `[1,{"a":"}"}]`, 1},
		{` {"a" : [1,{"a":"}"}] , "b":"\"" } `, "b", `"\""`, 1},
		{`{"a":1,"b":{"a":2},"a":true}`, "a", `true`, 2},
		{`{"\u0061":null}`, "a", `null`, 1},
		{`{"é":-1.5e3}`, "é", `-1.5e3`, 1},
		{`[{"a":1}]`, "a", ``, 0},
		{`"a"`, "a", ``, 0},
		{`{"a":1`, "a", `1`, 1},
	} {
		start, end, n := Member([]byte(tt.in), tt.key)
		if n != tt.n || n > 0 && tt.in[start:end] != tt.want {
			t.Errorf("Member(%s, %q) = %q ×%d", tt.in, tt.key, tt.in[start:end], n)
		}
	}
}
