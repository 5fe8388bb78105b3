package org.apache.dubbo.meshgate;

/**
 * The business exception of UserService.fail. It lives beside the interface so Dubbo's
 * ExceptionFilter passes it to the caller as-is instead of wrapping it in a RuntimeException.
 */
public class UserServiceException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    public UserServiceException() {
        super();
    }

    public UserServiceException(String message) {
        super(message);
    }
}
