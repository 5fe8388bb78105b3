package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"syscall"
	"time"

	"dubbo.apache.org/dubbo-go/v3/client"
	"dubbo.apache.org/dubbo-go/v3/protocol/triple/triple_protocol"

	"meshgate.test/peers/go/greeterpb"
)

// callOptions are the flags of the client mode (--call HOST:PORT).
type callOptions struct {
	address, group, version, method, name string
	millis, timeoutMillis                 int
}

func registerCallFlags() *callOptions {
	opts := &callOptions{}
	flag.StringVar(&opts.address, "call", "", "client mode: call the Greeter at HOST:PORT over Triple")
	flag.StringVar(&opts.group, "group", "", "client mode: tri-service-group")
	flag.StringVar(&opts.version, "version", "", "client mode: tri-service-version")
	flag.StringVar(&opts.method, "method", "SayHello", "client mode: SayHello, Fail, Slow or SayHelloStream")
	flag.StringVar(&opts.name, "name", "meshgate", "client mode: HelloRequest.name")
	flag.IntVar(&opts.millis, "millis", 0, "client mode: SlowRequest.millis")
	flag.IntVar(&opts.timeoutMillis, "timeout-ms", 10000, "client mode: the call's deadline")
	return opts
}

type replyLine struct {
	Message  string `json:"message"`
	ServedBy string `json:"served_by"`
}

type errorBody struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

type errorLine struct {
	Error errorBody `json:"error"`
}

// replies is where the JSON lines go: the original stdout. dubbo-go's logger writes to stdout, so
// client mode points file descriptor 1 at stderr and keeps stdout for the replies alone.
var replies = os.Stdout

func separateLogsFromReplies() {
	saved, err := syscall.Dup(1)
	if err != nil {
		fmt.Fprintf(os.Stderr, "dup stdout: %v\n", err)
		os.Exit(2)
	}
	if err := syscall.Dup3(2, 1, 0); err != nil {
		fmt.Fprintf(os.Stderr, "redirect stdout: %v\n", err)
		os.Exit(2)
	}
	replies = os.NewFile(uintptr(saved), "replies")
}

func printLine(value any) {
	line, err := json.Marshal(value)
	if err != nil {
		fmt.Fprintf(os.Stderr, "encode: %v\n", err)
		os.Exit(2)
	}
	fmt.Fprintln(replies, string(line))
}

func printReply(reply *greeterpb.HelloReply) {
	printLine(replyLine{Message: reply.Message, ServedBy: reply.ServedBy})
}

// printError writes the status the client saw; a context deadline the client enforced itself is
// DEADLINE_EXCEEDED too, as in gRPC.
func printError(err error) {
	code := int(triple_protocol.CodeOf(err))
	message := err.Error()
	var tripleErr *triple_protocol.Error
	if errors.As(err, &tripleErr) {
		message = tripleErr.Message()
	} else if errors.Is(err, context.DeadlineExceeded) {
		code = int(triple_protocol.CodeDeadlineExceeded)
	}
	printLine(errorLine{Error: errorBody{Code: code, Message: message}})
}

// runClient makes one call (or one stream) to the Greeter at opts.address with a direct URL
// (no registry) and prints each reply, or the error, as one JSON line.
func runClient(opts *callOptions) {
	separateLogsFromReplies()
	timeout := time.Duration(opts.timeoutMillis) * time.Millisecond
	// Fail-fast: dubbo-go's default failover cluster retries a failed call twice, and a test
	// (or meshgate's own retry policy) must see exactly one call per run.
	cli, err := client.NewClient(
		client.WithClientURL("tri://"+opts.address),
		client.WithClientRequestTimeout(timeout),
		client.WithClientClusterFailFast(),
	)
	if err != nil {
		fmt.Fprintf(os.Stderr, "new client: %v\n", err)
		os.Exit(2)
	}
	var references []client.ReferenceOption
	if opts.group != "" {
		references = append(references, client.WithGroup(opts.group))
	}
	if opts.version != "" {
		references = append(references, client.WithVersion(opts.version))
	}
	greeter, err := greeterpb.NewGreeterClient(cli, references...)
	if err != nil {
		fmt.Fprintf(os.Stderr, "reference Greeter: %v\n", err)
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	hello := &greeterpb.HelloRequest{Name: opts.name}
	var reply *greeterpb.HelloReply
	switch opts.method {
	case "SayHello":
		reply, err = greeter.SayHello(ctx, hello)
	case "Fail":
		reply, err = greeter.Fail(ctx, hello)
	case "Slow":
		reply, err = greeter.Slow(ctx, &greeterpb.SlowRequest{Millis: int32(opts.millis)})
	case "SayHelloStream":
		err = greeter.SayHelloStream(ctx, hello, printReply)
	default:
		fmt.Fprintf(os.Stderr, "unknown --method %q\n", opts.method)
		os.Exit(2)
	}
	if err != nil {
		printError(err)
	} else if reply != nil {
		printReply(reply)
	}
	replies.Sync()
}
