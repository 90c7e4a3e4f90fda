package transfer

import "io"

// cappedWriter passes at most limit bytes to w; the first byte past them
// stops the stream feeding it and fails the write, so a sandbox cannot make
// the caller take more. What fitted stays written: ReadFile answers with
// it, a copy removes its file. (untrusted.Buffer is the other bounded
// writer: it keeps printable text for messages and never stops a stream.)
type cappedWriter struct {
	w        io.Writer
	limit    int64
	n        int64
	exceeded bool
	stop     func()
}

func (c *cappedWriter) Write(p []byte) (int, error) {
	if room := c.limit - c.n; int64(len(p)) > room {
		n, _ := c.w.Write(p[:max(room, 0)])
		c.n += int64(n)
		c.exceeded = true
		c.stop()
		return 0, errExtractionStopped
	}
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
