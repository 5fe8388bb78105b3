package main

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// userEpoch is 2023-11-14T22:13:20Z, the same base date the Java peer uses.
var userEpoch = time.UnixMilli(1_700_000_000_000).UTC()

// User is the hessian2 twin of the Java POJO org.apache.dubbo.meshgate.User.
type User struct {
	ID      int64             `hessian:"id"`
	Name    string            `hessian:"name"`
	Tags    []string          `hessian:"tags"`
	Attrs   map[string]string `hessian:"attrs"`
	Created time.Time         `hessian:"created"`
}

// JavaClassName is the class name hessian2 writes on the wire for User.
func (User) JavaClassName() string {
	return "org.apache.dubbo.meshgate.User"
}

// UserService serves org.apache.dubbo.meshgate.UserService over the dubbo protocol. Go has no
// overloading, so greet(String, int) is missing; dubbo-go matches "echo" to Echo by itself.
type UserService struct {
	group, version string
}

func (s *UserService) label() string {
	return fmt.Sprintf("go %s/%s", s.group, s.version)
}

// Reference keeps the two registrations (g1, g2) apart: dubbo-go keys services by it.
func (s *UserService) Reference() string {
	return "UserService-" + s.group
}

func (s *UserService) Echo(_ context.Context, text string) (string, error) {
	return fmt.Sprintf("%s [%s]", text, s.label()), nil
}

func (s *UserService) Add(_ context.Context, a, b int32) (int32, error) {
	return a + b, nil
}

func (s *UserService) GetUser(_ context.Context, id int64) (*User, error) {
	return s.user(id), nil
}

func (s *UserService) user(id int64) *User {
	return &User{
		ID:      id,
		Name:    fmt.Sprintf("user-%d", id),
		Tags:    []string{s.group, fmt.Sprintf("user-%d", id)},
		Attrs:   map[string]string{"peer": "go", "group": s.group, "version": s.version},
		Created: userEpoch.Add(time.Duration(id) * time.Second),
	}
}

func (s *UserService) CreateUser(_ context.Context, user *User) (*User, error) {
	created := *user
	created.Tags = append(append([]string{}, user.Tags...), "created")
	created.Attrs = map[string]string{}
	for key, value := range user.Attrs {
		created.Attrs[key] = value
	}
	created.Attrs["served_by"] = s.label()
	if created.Created.IsZero() {
		created.Created = userEpoch
	}
	return &created, nil
}

func (s *UserService) Greet(_ context.Context, name string) (string, error) {
	return "hello " + name, nil
}

func (s *UserService) ListUsers(_ context.Context, ids []int64) ([]*User, error) {
	users := make([]*User, 0, len(ids))
	for _, id := range ids {
		users = append(users, s.user(id))
	}
	return users, nil
}

func (s *UserService) Fail(_ context.Context, message string) error {
	return errors.New(message)
}

func (s *UserService) Slow(_ context.Context, millis int32) (string, error) {
	time.Sleep(time.Duration(millis) * time.Millisecond)
	return fmt.Sprintf("slept %dms", millis), nil
}
