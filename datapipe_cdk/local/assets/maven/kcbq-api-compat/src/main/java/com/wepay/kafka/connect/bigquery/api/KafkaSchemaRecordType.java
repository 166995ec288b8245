package com.wepay.kafka.connect.bigquery.api;

/** Which half of a Kafka record a schema describes (referenced by kcbq-connector 2.0.0-alpha). */
public enum KafkaSchemaRecordType {
    VALUE("value"),
    KEY("key");

    private final String name;

    KafkaSchemaRecordType(String name) {
        this.name = name;
    }

    @Override
    public String toString() {
        return name;
    }
}
