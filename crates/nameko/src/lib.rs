//! Nameko over AMQP.
